//go:build !cuda

package main

import "github.com/samgo/samgo/sam/nn"

func init() {
	nn.RegisterHint("cuda", "this sam was built without CUDA support; build it with `make cuda` (needs the CUDA toolkit) and run it on a machine with an NVIDIA GPU")
}
