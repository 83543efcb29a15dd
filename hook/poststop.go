package main

import (
	"errors"

	"github.com/cgpol/cgpol/pkg/enforce"
)

// poststop removes the pins and map entries of the container's attachment.
// It finds the attachment by container id, since the container's cgroup may
// be gone already, and succeeds when there is nothing to remove.
func poststop(s *state, root string) error {
	if !hostRoot() {
		return nil // an unprivileged hook cannot have attached anything
	}
	objs, err := enforce.Open(root)
	if errors.Is(err, enforce.ErrNotInstalled) {
		return nil
	}
	if err != nil {
		return err
	}
	defer objs.Close()
	id, ok, err := objs.FindContainer(containerKey(s.ID))
	if err != nil || !ok {
		return err
	}
	if err := objs.Detach(id); err != nil && !errors.Is(err, enforce.ErrNotAttached) {
		return err
	}
	return nil
}
