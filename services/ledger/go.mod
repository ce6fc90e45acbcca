module github.com/boomerang-loyalty/boomerang/services/ledger

go 1.26.0

require (
	github.com/boomerang-loyalty/boomerang/pkg v0.0.0
	github.com/boomerang-loyalty/boomerang/proto v0.0.0
)

replace (
	github.com/boomerang-loyalty/boomerang/pkg => ../../pkg
	github.com/boomerang-loyalty/boomerang/proto => ../../proto
)
