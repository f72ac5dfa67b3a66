//go:build cuda

package main

import _ "github.com/samgo/samgo/sam/nn/gpu" // registers the "cuda" device
