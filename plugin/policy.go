package main

import (
	"fmt"

	"github.com/containerd/nri/pkg/api"

	"github.com/cgpol/cgpol/pkg/nodeconfig"
	"github.com/cgpol/cgpol/pkg/policy"
)

// effectivePolicy decides the policy of one container of a pod, in order:
// the container-scoped keys (allow-ports.cgpol.io/container.<name>), the
// pod-wide cgpol.io/ keys, and the node's default policy. Kubernetes users
// can set only pod annotations, so container annotations are not read. A
// malformed cgpol key is an error even if it is scoped to another
// container; a bad value is an error for the container that it applies to.
func effectivePolicy(cfg *nodeconfig.Config, pod *api.PodSandbox, ctr *api.Container) (policy.Policy, nodeconfig.Source, error) {
	ann, err := policy.ForContainer(pod.GetAnnotations(), ctr.GetName())
	if err != nil {
		return policy.Policy{}, "", err
	}
	return cfg.PolicyFor(ann, nodeconfig.Container{
		ID:        ctr.GetId(),
		Name:      ctr.GetName(),
		Pod:       pod.GetName(),
		Namespace: pod.GetNamespace(),
	})
}

// labelName names a container in cgpol status: namespace/pod/container.
func labelName(pod *api.PodSandbox, ctr *api.Container) string {
	if pod.GetName() == "" {
		return ctr.GetName()
	}
	return fmt.Sprintf("%s/%s/%s", pod.GetNamespace(), pod.GetName(), ctr.GetName())
}
