//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgpol: per-cgroup network policy at the cgroup sock_addr hooks.
 *
 * Loaded once and pinned. Every cgroup that cgpol attaches to gets its own
 * cgroup storage (struct cgpol_ref), and the kernel hands each program the
 * storage of the cgroup it is attached to, so a process in a child cgroup is
 * judged by its attached ancestor's policy with no walk up the tree.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "cgpol.h"

#define VERDICT_DENY 0
#define VERDICT_ALLOW 1

/* Which slot each attached cgroup has. Zeroed at attach: deny. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct cgpol_ref);
} cgpol_refs SEC(".maps");

/* Allowed and denied calls, per attached cgroup and hook, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE);
	__type(key, struct bpf_cgroup_storage_key);
	__type(value, struct cgpol_hook_counters);
} cgpol_counters SEC(".maps");

/*
 * slot -> a one-element array holding that slot's policy. Every inner array
 * has the same shape, so the verifier inlines both lookups.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CGPOL_MAX_CGROUPS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(max_entries, 1);
		__type(key, __u32);
		__type(value, struct cgpol_policy);
	});
} cgpol_policies SEC(".maps");

/* slot -> the cgroup that claimed it. Only userspace uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGPOL_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} cgpol_slots SEC(".maps");

/* cgroup id -> name and time of attachment. Only userspace uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGPOL_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct cgpol_attachment);
} cgpol_meta SEC(".maps");

/*
 * Name the shared types once more so that they reach BTF in full, where
 * bpf2go finds them. The section is not a data section: nothing is loaded.
 */
#define BTF_TYPE(type, name) type name __attribute__((section(".cgpol.btf_types"), used))
BTF_TYPE(struct cgpol_policy, btf_policy);
BTF_TYPE(enum cgpol_flag, btf_flag);
BTF_TYPE(enum cgpol_port_set, btf_port_set);
BTF_TYPE(enum cgpol_hook, btf_hook);

/* The policy of the cgroup that a program runs for, or NULL: deny. */
static __always_inline const struct cgpol_policy *current_policy(void)
{
	const struct cgpol_ref *ref = bpf_get_local_storage(&cgpol_refs, 0);
	__u32 slot = ref->slot - 1; /* slot 0 wraps around and finds nothing */
	__u32 zero = 0;

	void *inner = bpf_map_lookup_elem(&cgpol_policies, &slot);
	if (!inner)
		return NULL;
	const struct cgpol_policy *policy = bpf_map_lookup_elem(inner, &zero);
	if (!policy || policy->cgroup_id != ref->cgroup_id)
		return NULL;
	return policy;
}

static __always_inline bool port_in_set(const struct cgpol_policy *policy, int set, __u16 port)
{
	return (policy->ports[set][port / 64] >> (port % 64)) & 1;
}

/* The port set that a socket's protocol is checked against, or -1. */
static __always_inline int egress_port_set(__u32 protocol)
{
	if (protocol == IPPROTO_TCP)
		return CGPOL_SET_EGRESS_TCP;
	if (protocol == IPPROTO_UDP)
		return CGPOL_SET_EGRESS_UDP;
	return -1;
}

/*
 * The egress verdict for a destination port. Only the port matters so far,
 * so an IPv4-mapped IPv6 destination gets the verdict of its IPv4 form.
 */
static __always_inline int egress_verdict(const struct cgpol_policy *policy, __u32 protocol, __u16 dport)
{
	if (!policy)
		return VERDICT_DENY;
	if (!(policy->flags & CGPOL_F_EGRESS_PORTS))
		return VERDICT_ALLOW;
	int set = egress_port_set(protocol);
	if (set < 0)
		return VERDICT_DENY; /* an allowlist of TCP/UDP ports admits nothing else */
	return port_in_set(policy, set, dport) ? VERDICT_ALLOW : VERDICT_DENY;
}

/* Counts a verdict and returns what the hook returns: 1 allows, 0 fails with EPERM. */
static __always_inline int count(int verdict, const struct cgpol_policy *policy)
{
	struct cgpol_hook_counters *c = bpf_get_local_storage(&cgpol_counters, 0);

	if (verdict == VERDICT_ALLOW) {
		__sync_fetch_and_add(&c->allowed, 1);
		return 1;
	}
	if (policy && (policy->flags & CGPOL_F_AUDIT)) {
		__sync_fetch_and_add(&c->audited, 1);
		return 1;
	}
	__sync_fetch_and_add(&c->denied, 1);
	return 0;
}

/* Shared body of connect4/6 and sendmsg4/6. */
static __always_inline int egress(struct bpf_sock_addr *ctx)
{
	const struct cgpol_policy *policy = current_policy();
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);

	return count(egress_verdict(policy, ctx->protocol, dport), policy);
}

SEC("cgroup/connect4")
int cgpol_connect4(struct bpf_sock_addr *ctx)
{
	return egress(ctx);
}

SEC("cgroup/connect6")
int cgpol_connect6(struct bpf_sock_addr *ctx)
{
	return egress(ctx);
}

SEC("cgroup/sendmsg4")
int cgpol_sendmsg4(struct bpf_sock_addr *ctx)
{
	return egress(ctx);
}

SEC("cgroup/sendmsg6")
int cgpol_sendmsg6(struct bpf_sock_addr *ctx)
{
	return egress(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
