module github.com/hookpipe/hookpipe/receiver

go 1.26.0

toolchain go1.26.11

require (
	github.com/hookpipe/hookpipe/devenv v0.0.0
	github.com/hookpipe/hookpipe/plumbing v0.0.0
	github.com/hookpipe/hookpipe/task v0.0.0
	github.com/hookpipe/hookpipe/testdata v0.0.0
	github.com/nats-io/nats-server/v2 v2.15.3
	github.com/nats-io/nats.go v1.55.0
	github.com/prometheus/client_golang v1.25.0
	github.com/redis/go-redis/v9 v9.23.0
	github.com/valyala/fasthttp v1.78.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.9.0-default-no-op // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/klauspost/compress v1.20.4 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/molecule-man/go-brrr v1.3.1 // indirect
	github.com/nats-io/jwt/v2 v2.8.3 // indirect
	github.com/nats-io/nkeys v0.4.17 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/valyala/bytebufferpool v1.0.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace github.com/hookpipe/hookpipe/task => ../task

replace github.com/hookpipe/hookpipe/testdata => ../testdata

replace github.com/hookpipe/hookpipe/devenv => ../devenv

replace github.com/hookpipe/hookpipe/plumbing => ../plumbing
