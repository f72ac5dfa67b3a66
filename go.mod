module github.com/samgo/samgo

go 1.26

require (
	codeberg.org/sbinet/npyio v0.14.0
	github.com/NVIDIA/go-nvml v0.13.4-1
	github.com/google/go-cmp v0.7.0
	github.com/nlpodyssey/gopickle v0.3.0
	github.com/stretchr/testify v1.12.1
	golang.org/x/image v0.33.0
	golang.org/x/sys v0.38.0
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/text v0.34.0 // indirect
	gonum.org/v1/gonum v0.17.0 // indirect
)
