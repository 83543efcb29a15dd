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

/* Which policy each attached cgroup has. Zeroed at attach: deny. */
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
 * policy id -> that policy's port map. Each policy gets its own inner map,
 * sized to fit; deleting the entry frees it.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 1);
		__type(key, struct cgpol_port_key);
		__type(value, struct cgpol_port_chunk);
	});
} cgpol_ports SEC(".maps");

/* cgroup id -> name and time of attachment, for status and events. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct cgpol_attachment);
} cgpol_meta SEC(".maps");

/*
 * Name the shared types once more so that they reach BTF in full, where
 * bpf2go finds them. The section is not a data section: nothing is loaded.
 */
#define BTF_TYPE(type, name) type name __attribute__((section(".cgpol.btf_types"), used))
BTF_TYPE(struct cgpol_port_key, btf_port_key);
BTF_TYPE(struct cgpol_port_chunk, btf_port_chunk);
BTF_TYPE(enum cgpol_flag, btf_flag);
BTF_TYPE(enum cgpol_port_set, btf_port_set);
BTF_TYPE(enum cgpol_hook, btf_hook);

static __always_inline bool port_in_set(void *ports, __u16 set, __u16 port)
{
	struct cgpol_port_key key = { .set = set, .chunk = port / CGPOL_PORTS_PER_CHUNK };
	struct cgpol_port_chunk *chunk = bpf_map_lookup_elem(ports, &key);
	__u32 bit = port % CGPOL_PORTS_PER_CHUNK;

	return chunk && (chunk->bits[bit / 64] >> (bit % 64)) & 1;
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
static __always_inline int egress_verdict(const struct cgpol_ref *ref, __u32 protocol, __u16 dport)
{
	if (!(ref->flags & CGPOL_F_VALID))
		return VERDICT_DENY;
	if (!(ref->flags & CGPOL_F_EGRESS_PORTS))
		return VERDICT_ALLOW;

	int set = egress_port_set(protocol);
	if (set < 0)
		return VERDICT_DENY; /* an allowlist of TCP/UDP ports admits nothing else */

	void *ports = bpf_map_lookup_elem(&cgpol_ports, &ref->policy_id);
	if (!ports)
		return VERDICT_DENY;
	return port_in_set(ports, set, dport) ? VERDICT_ALLOW : VERDICT_DENY;
}

static __always_inline int count(int verdict, const struct cgpol_ref *ref)
{
	struct cgpol_hook_counters *c = bpf_get_local_storage(&cgpol_counters, 0);

	if (verdict == VERDICT_ALLOW) {
		__sync_fetch_and_add(&c->allowed, 1);
		return 1;
	}
	if (ref->flags & CGPOL_F_AUDIT) {
		__sync_fetch_and_add(&c->audited, 1);
		return 1;
	}
	__sync_fetch_and_add(&c->denied, 1);
	return 0;
}

/* Shared body of connect4/6 and sendmsg4/6. Returning 0 fails the call with EPERM. */
static __always_inline int egress(struct bpf_sock_addr *ctx)
{
	struct cgpol_ref *ref = bpf_get_local_storage(&cgpol_refs, 0);
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);

	return count(egress_verdict(ref, ctx->protocol, dport), ref);
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
