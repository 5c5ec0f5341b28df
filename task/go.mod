module github.com/hookpipe/hookpipe/task

go 1.26
