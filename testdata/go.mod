module github.com/hookpipe/hookpipe/testdata

go 1.26.0
