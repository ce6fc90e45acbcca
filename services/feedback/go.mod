module github.com/boomerang-loyalty/boomerang/services/feedback

go 1.26.0

replace (
	github.com/boomerang-loyalty/boomerang/pkg => ../../pkg
	github.com/boomerang-loyalty/boomerang/proto => ../../proto
)
