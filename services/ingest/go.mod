module github.com/boomerang-loyalty/boomerang/services/ingest

go 1.26.0

require (
	github.com/boomerang-loyalty/boomerang/pkg v0.0.0
	github.com/boomerang-loyalty/boomerang/proto v0.0.0
	google.golang.org/protobuf v1.36.12
)

require (
	buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go v1.36.12-20260825204119-511051f7f437.2 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261005182115-fad411399dd8 // indirect
	google.golang.org/grpc v1.85.0 // indirect
)

replace (
	github.com/boomerang-loyalty/boomerang/pkg => ../../pkg
	github.com/boomerang-loyalty/boomerang/proto => ../../proto
)
