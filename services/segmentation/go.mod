module github.com/boomerang-loyalty/boomerang/services/segmentation

go 1.26.0

require gonum.org/v1/gonum v0.17.0

require golang.org/x/tools v0.30.0 // indirect

replace (
	github.com/boomerang-loyalty/boomerang/pkg => ../../pkg
	github.com/boomerang-loyalty/boomerang/proto => ../../proto
)
