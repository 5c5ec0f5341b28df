module github.com/hookpipe/hookpipe/producer

go 1.26.0

require (
	github.com/go-faker/faker/v4 v4.12.0
	github.com/hookpipe/hookpipe/task v0.0.0
	github.com/hookpipe/hookpipe/testdata v0.0.0
	github.com/redis/go-redis/v9 v9.23.0
	golang.org/x/sync v0.25.0
	golang.org/x/time v0.16.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)

replace github.com/hookpipe/hookpipe/task => ../task

replace github.com/hookpipe/hookpipe/testdata => ../testdata
