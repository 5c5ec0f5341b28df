module github.com/hookpipe/hookpipe/task

go 1.26

toolchain go1.26.11
