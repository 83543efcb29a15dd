module github.com/cgpol/cgpol

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/prometheus/common v0.62.0
	golang.org/x/sys v0.43.0
	sigs.k8s.io/yaml v1.6.0
)

require (
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/prometheus/client_model v0.6.1 // indirect
	go.yaml.in/yaml/v2 v2.4.2 // indirect
	google.golang.org/protobuf v1.36.1 // indirect
)
