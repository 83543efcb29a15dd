//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgpol: per-cgroup network policy at the cgroup socket hooks.
 *
 * Loaded once and pinned. Every cgroup that cgpol attaches to gets its own
 * cgroup storage (struct cgpol_ref), and the kernel hands each program the
 * storage of the cgroup it is attached to, so a process in a child cgroup is
 * judged by its attached ancestor's policy with no walk up the tree.
 * See cgpol.h for the maps a decision reads.
 */
#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "cgpol.h"

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define SOCK_RAW 3
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

#define ALLOW 1
#define DENY 0

/* Set by the loader from what the kernel offers (enum cgpol_feature). */
volatile const __u32 cgpol_features = 0;

/* Which slot each attached cgroup has. Zeroed at attach: deny. */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_STORAGE);
	__type(key, __u64);
	__type(value, struct cgpol_ref);
} cgpol_refs SEC(".maps");

/* Calls per verdict, per attached cgroup and hook, per CPU. */
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

/* policy.rules -> the policy's IPv4 address rules. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CGPOL_MAX_RULE_SETS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(max_entries, 1);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__type(key, struct cgpol_cidr4_key);
		__type(value, struct cgpol_cidr_value);
	});
} cgpol_cidr4 SEC(".maps");

/* policy.rules -> the policy's IPv6 address rules. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CGPOL_MAX_RULE_SETS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);
		__uint(max_entries, 1);
		__uint(map_flags, BPF_F_NO_PREALLOC);
		__type(key, struct cgpol_cidr6_key);
		__type(value, struct cgpol_cidr_value);
	});
} cgpol_cidr6 SEC(".maps");

/* policy.rules -> the policy's chunked port sets (bind, CIDR rules). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CGPOL_MAX_RULE_SETS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 1);
		__type(key, struct cgpol_port_key);
		__type(value, struct cgpol_port_chunk);
	});
} cgpol_portsets SEC(".maps");

/* policy.rules -> the policy's redirects. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, CGPOL_MAX_RULE_SETS);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__uint(max_entries, 1);
		__type(key, struct cgpol_redirect_key);
		__type(value, struct cgpol_redirect_target);
	});
} cgpol_redirects SEC(".maps");

/* socket -> memo of its last allowed IPv4 destination; see cgpol.h. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u64);
} cgpol_sk_memo SEC(".maps");

/* (socket, redirect target) -> what the application dialled. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct cgpol_revnat_key);
	__type(value, struct cgpol_revnat_value);
} cgpol_revnat SEC(".maps");

/* Deny and audit events; dropped when full, counted in cgpol_stats. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} cgpol_events SEC(".maps");

/* Global counters (enum cgpol_stat), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CGPOL_STATS);
	__type(key, __u32);
	__type(value, __u64);
} cgpol_stats SEC(".maps");

/* slot -> the cgroup that claimed it. Only userspace uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGPOL_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u64);
} cgpol_slots SEC(".maps");

/*
 * Free slots that still hold a policy map ("warm"): a new attach reuses the
 * map and writes in place, because every update of cgpol_policies from
 * userspace waits for an RCU grace period. Only userspace uses it; it is an
 * index, and a slot's outer entry is the truth.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGPOL_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} cgpol_warm SEC(".maps");

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
BTF_TYPE(struct cgpol_port_chunk, btf_port_chunk);
BTF_TYPE(struct cgpol_port_key, btf_port_key);
BTF_TYPE(struct cgpol_cidr4_key, btf_cidr4_key);
BTF_TYPE(struct cgpol_cidr6_key, btf_cidr6_key);
BTF_TYPE(struct cgpol_cidr_value, btf_cidr_value);
BTF_TYPE(struct cgpol_redirect_key, btf_redirect_key);
BTF_TYPE(struct cgpol_redirect_target, btf_redirect_target);
BTF_TYPE(struct cgpol_event, btf_event);
BTF_TYPE(enum cgpol_flag, btf_flag);
BTF_TYPE(enum cgpol_port_set, btf_port_set);
BTF_TYPE(enum cgpol_rule_port_set, btf_rule_port_set);
BTF_TYPE(enum cgpol_hook, btf_hook);
BTF_TYPE(enum cgpol_reason, btf_reason);
BTF_TYPE(enum cgpol_stat, btf_stat);
BTF_TYPE(enum cgpol_feature, btf_feature);

/* A destination or a local address, as the hooks see it. */
struct endpoint {
	__u32 addr[4]; /* network order; IPv4 in addr[0] */
	__u16 port;    /* host order */
	bool v4;       /* IPv4, or IPv4-mapped IPv6: judged by the IPv4 rules */
};

/*
 * The policy of the cgroup that a program runs for, or NULL: deny. *ref is
 * the attached cgroup's storage.
 */
static __always_inline const struct cgpol_policy *current_policy(const struct cgpol_ref **ref)
{
	const struct cgpol_ref *r = bpf_get_local_storage(&cgpol_refs, 0);
	__u32 slot = r->slot - 1; /* slot 0 wraps around and finds nothing */
	__u32 zero = 0;

	*ref = r;
	void *inner = bpf_map_lookup_elem(&cgpol_policies, &slot);
	if (!inner)
		return NULL;
	const struct cgpol_policy *policy = bpf_map_lookup_elem(inner, &zero);
	if (!policy || policy->cgroup_id != r->cgroup_id)
		return NULL;
	return policy;
}

static __always_inline bool is_v4_mapped(const __u32 *a)
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0xffff);
}

/* The address and port of a sock_addr call. */
static __always_inline void read_endpoint(struct bpf_sock_addr *ctx, bool v6, struct endpoint *e)
{
	e->port = bpf_ntohs((__u16)ctx->user_port);
	if (!v6) {
		e->addr[0] = ctx->user_ip4;
		e->addr[1] = e->addr[2] = e->addr[3] = 0;
		e->v4 = true;
		return;
	}
	e->addr[0] = ctx->user_ip6[0];
	e->addr[1] = ctx->user_ip6[1];
	e->addr[2] = ctx->user_ip6[2];
	e->addr[3] = ctx->user_ip6[3];
	e->v4 = is_v4_mapped(e->addr);
	if (e->v4) {
		e->addr[0] = e->addr[3];
		e->addr[1] = e->addr[2] = e->addr[3] = 0;
	}
}

/* Writes an endpoint back into a sock_addr call, keeping the socket's family. */
static __always_inline void write_endpoint(struct bpf_sock_addr *ctx, bool v6, const struct endpoint *e)
{
	ctx->user_port = bpf_htons(e->port);
	if (!v6) {
		ctx->user_ip4 = e->addr[0];
		return;
	}
	if (e->v4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = e->addr[0];
		return;
	}
	ctx->user_ip6[0] = e->addr[0];
	ctx->user_ip6[1] = e->addr[1];
	ctx->user_ip6[2] = e->addr[2];
	ctx->user_ip6[3] = e->addr[3];
}

/* The port set of struct cgpol_policy that a protocol is checked against, or -1. */
static __always_inline int egress_port_set(__u32 protocol)
{
	if (protocol == IPPROTO_TCP)
		return CGPOL_SET_EGRESS_TCP;
	if (protocol == IPPROTO_UDP)
		return CGPOL_SET_EGRESS_UDP;
	return -1;
}

static __always_inline bool port_in_policy(const struct cgpol_policy *policy, int set, __u16 port)
{
	return (policy->ports[set][port / 64] >> (port % 64)) & 1;
}

/* Whether a chunked port set of a policy's rules allows a port. */
static __always_inline bool port_in_rule_set(__u32 rules, __u16 set, __u16 port)
{
	void *sets = bpf_map_lookup_elem(&cgpol_portsets, &rules);
	if (!sets)
		return false;
	struct cgpol_port_key key = { .set = set, .chunk = port / 512 };
	const struct cgpol_port_chunk *chunk = bpf_map_lookup_elem(sets, &key);
	__u32 bit = port % 512;

	return chunk && (chunk->bits[bit / 64] >> (bit % 64)) & 1;
}

/* The longest matching prefix of the address rules, or NULL. */
static __always_inline const struct cgpol_cidr_value *lpm_lookup(__u32 rules, const struct endpoint *e)
{
	if (e->v4) {
		void *trie = bpf_map_lookup_elem(&cgpol_cidr4, &rules);
		if (!trie)
			return NULL;
		struct cgpol_cidr4_key key = { .prefixlen = 32 };
		__builtin_memcpy(key.addr, &e->addr[0], 4);
		return bpf_map_lookup_elem(trie, &key);
	}
	void *trie = bpf_map_lookup_elem(&cgpol_cidr6, &rules);
	if (!trie)
		return NULL;
	struct cgpol_cidr6_key key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr, e->addr, 16);
	return bpf_map_lookup_elem(trie, &key);
}

/* The address rules' verdict: CGPOL_R_NONE if some rule allows e. */
static __always_inline int cidr_reason(const struct cgpol_policy *policy, int set, const struct endpoint *e)
{
	const struct cgpol_cidr_value *value = lpm_lookup(policy->rules, e);
	if (!value)
		return CGPOL_R_CIDR;
	__u16 ports = set == CGPOL_SET_EGRESS_TCP ? value->tcp : value->udp;
	if (ports == CGPOL_RSET_ALL)
		return CGPOL_R_NONE;
	if (ports == CGPOL_RSET_NONE || !port_in_rule_set(policy->rules, ports, e->port))
		return CGPOL_R_CIDR_PORT;
	return CGPOL_R_NONE;
}

/* Why the policy denies a destination, or CGPOL_R_NONE if it allows it. */
static __always_inline int egress_reason(const struct cgpol_policy *policy, __u32 protocol, const struct endpoint *e)
{
	if (!(policy->flags & (CGPOL_F_EGRESS_PORTS | CGPOL_F_EGRESS_CIDRS)))
		return CGPOL_R_NONE;
	int set = egress_port_set(protocol);
	if (set < 0)
		return CGPOL_R_PROTOCOL; /* an allowlist admits only TCP and UDP */
	if ((policy->flags & CGPOL_F_EGRESS_PORTS) && !port_in_policy(policy, set, e->port))
		return CGPOL_R_PORT;
	if (policy->flags & CGPOL_F_EGRESS_CIDRS)
		return cidr_reason(policy, set, e);
	return CGPOL_R_NONE;
}

/* The redirect for a destination: an exact rule, else a rule for any address. */
static __always_inline const struct cgpol_redirect_target *find_redirect(const struct cgpol_policy *policy, __u32 protocol, const struct endpoint *e)
{
	__u32 rules = policy->rules;
	void *redirects = bpf_map_lookup_elem(&cgpol_redirects, &rules);
	if (!redirects)
		return NULL;
	struct cgpol_redirect_key key = {
		.port = e->port,
		.protocol = protocol,
		.family = e->v4 ? 4 : 6,
	};
	__builtin_memcpy(key.addr, e->addr, 16);
	const struct cgpol_redirect_target *target = bpf_map_lookup_elem(redirects, &key);
	if (target)
		return target;
	__builtin_memset(key.addr, 0, sizeof(key.addr));
	return bpf_map_lookup_elem(redirects, &key);
}

static __always_inline void count_stat(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&cgpol_stats, &stat);
	if (n)
		__sync_fetch_and_add(n, 1);
}

/* Puts a deny or audit event in the ring buffer, or counts it as lost. */
static __always_inline void report(int hook, int reason, bool audit, const struct cgpol_ref *ref,
				   __u16 family, __u8 protocol, __u8 type, const struct endpoint *e)
{
	struct cgpol_event *ev = bpf_ringbuf_reserve(&cgpol_events, sizeof(*ev), 0);
	if (!ev) {
		count_stat(CGPOL_STAT_EVENTS_LOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->boot_ns = bpf_ktime_get_boot_ns();
	ev->cgroup_id = ref->cgroup_id;
	if (cgpol_features & CGPOL_FEAT_TASK_INFO) {
		ev->task_cgroup_id = bpf_get_current_cgroup_id();
		ev->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(ev->comm, sizeof(ev->comm));
	}
	ev->hook = hook;
	ev->audit = audit;
	ev->reason = reason;
	ev->family = family;
	ev->protocol = protocol;
	ev->type = type;
	if (e) {
		ev->port = e->port;
		__builtin_memcpy(ev->addr, e->addr, 16);
		if (e->v4)
			ev->family = AF_INET;
	}
	bpf_ringbuf_submit(ev, 0);
}

/*
 * Counts a verdict, reports a denial, and returns what a deciding hook
 * returns: 1 allows; 0 fails the call with EPERM.
 */
static __always_inline int verdict(int hook, int reason, const struct cgpol_policy *policy, const struct cgpol_ref *ref,
				   __u16 family, __u8 protocol, __u8 type, const struct endpoint *e)
{
	struct cgpol_hook_counters *c = bpf_get_local_storage(&cgpol_counters, 0);

	if (reason == CGPOL_R_NONE) {
		__sync_fetch_and_add(&c->allowed, 1);
		return ALLOW;
	}
	bool audit = policy && (policy->flags & CGPOL_F_AUDIT);
	report(hook, reason, audit, ref, family, protocol, type, e);
	if (audit) {
		__sync_fetch_and_add(&c->audited, 1);
		return ALLOW;
	}
	__sync_fetch_and_add(&c->denied, 1);
	return DENY;
}

/* Remembers what a redirected socket dialled, for recvmsg and getpeername. */
static __always_inline void remember_dialled(struct bpf_sock_addr *ctx, const struct endpoint *target, const struct endpoint *dialled)
{
	struct cgpol_revnat_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = target->port,
		.family = target->v4 ? 4 : 6,
	};
	__builtin_memcpy(key.addr, target->addr, 16);
	struct cgpol_revnat_value value = { .port = dialled->port };
	__builtin_memcpy(value.addr, dialled->addr, 16);
	bpf_map_update_elem(&cgpol_revnat, &key, &value, BPF_ANY);
}

/*
 * The memo word of an IPv4 destination under a policy (see cgpol.h), or 0
 * where no memo applies: IPv6, no address rules (the port check alone is
 * cheaper than the memo), redirects, or a kernel without the helper.
 */
static __always_inline __u64 memo_word(const struct cgpol_policy *policy, __u32 protocol, const struct endpoint *e)
{
	if (!(cgpol_features & CGPOL_FEAT_SK_MEMO) || !e->v4 ||
	    (policy->flags & (CGPOL_F_EGRESS_CIDRS | CGPOL_F_REDIRECT)) != CGPOL_F_EGRESS_CIDRS)
		return 0;
	return (((__u64)e->addr[0] << 32) | ((__u64)e->port << 16) | ((protocol & 0xff) << 8) | 1) ^ policy->epoch;
}

/* Whether the socket's memo says this destination was allowed. */
static __always_inline bool memo_allows(struct bpf_sock *sk, __u64 word)
{
	if (!word || !sk)
		return false;
	__u64 *memo = bpf_sk_storage_get(&cgpol_sk_memo, sk, 0, 0);
	return memo && *(volatile __u64 *)memo == word;
}

static __always_inline void memo_remember(struct bpf_sock *sk, __u64 word)
{
	if (!word || !sk)
		return;
	__u64 *memo = bpf_sk_storage_get(&cgpol_sk_memo, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (memo)
		*(volatile __u64 *)memo = word; /* one store: never half-written */
}

/*
 * The body of connect4/6 and sendmsg4/6: check the destination the
 * application asked for; if a redirect applies, check its target too, then
 * rewrite the call.
 */
static __always_inline int egress(struct bpf_sock_addr *ctx, int hook, bool v6)
{
	struct bpf_sock *sk = ctx->sk; /* loaded first: the verifier wants ctx unmodified */
	const struct cgpol_ref *ref;
	const struct cgpol_policy *policy = current_policy(&ref);
	__u32 protocol = ctx->protocol;
	struct endpoint dest;

	read_endpoint(ctx, v6, &dest);
	if (!policy)
		return verdict(hook, CGPOL_R_NO_POLICY, policy, ref, v6 ? AF_INET6 : AF_INET, protocol, 0, &dest);
	__u64 word = memo_word(policy, protocol, &dest);
	if (memo_allows(sk, word))
		return verdict(hook, CGPOL_R_NONE, policy, ref, 0, 0, 0, &dest);
	int reason = egress_reason(policy, protocol, &dest);
	if (reason == CGPOL_R_NONE)
		memo_remember(sk, word);
	const struct cgpol_redirect_target *t = NULL;
	struct endpoint target = { .v4 = dest.v4 };
	if (reason == CGPOL_R_NONE && (policy->flags & CGPOL_F_REDIRECT)) {
		t = find_redirect(policy, protocol, &dest);
		if (t) {
			__builtin_memcpy(target.addr, t->addr, 16);
			target.port = t->port;
			if (egress_reason(policy, protocol, &target) != CGPOL_R_NONE)
				reason = CGPOL_R_REDIRECT_TARGET;
		}
	}
	int ret = verdict(hook, reason, policy, ref, v6 ? AF_INET6 : AF_INET, protocol, 0, &dest);
	if (ret == ALLOW && t && reason == CGPOL_R_NONE) {
		remember_dialled(ctx, &target, &dest);
		write_endpoint(ctx, v6, &target);
		struct cgpol_hook_counters *c = bpf_get_local_storage(&cgpol_counters, 0);
		__sync_fetch_and_add(&c->redirected, 1);
	}
	return ret;
}

/*
 * The body of recvmsg4/6 and getpeername4/6: a reply from, or a peer that
 * is, a redirect target shows as the address the application dialled.
 * These hooks must return 1.
 */
static __always_inline int translate_back(struct bpf_sock_addr *ctx, bool v6)
{
	struct endpoint peer;

	read_endpoint(ctx, v6, &peer);
	struct cgpol_revnat_key key = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = peer.port,
		.family = peer.v4 ? 4 : 6,
	};
	__builtin_memcpy(key.addr, peer.addr, 16);
	const struct cgpol_revnat_value *dialled = bpf_map_lookup_elem(&cgpol_revnat, &key);
	if (dialled) {
		struct endpoint e = { .port = dialled->port, .v4 = peer.v4 };
		__builtin_memcpy(e.addr, dialled->addr, 16);
		write_endpoint(ctx, v6, &e);
	}
	return 1;
}

/* The body of bind4/6: the local port must be in the bind port set. */
static __always_inline int bind_check(struct bpf_sock_addr *ctx, int hook, bool v6)
{
	const struct cgpol_ref *ref;
	const struct cgpol_policy *policy = current_policy(&ref);
	__u32 protocol = ctx->protocol;
	struct endpoint local;
	int reason = CGPOL_R_NONE;

	read_endpoint(ctx, v6, &local);
	if (!policy)
		reason = CGPOL_R_NO_POLICY;
	else if (!(policy->flags & CGPOL_F_BIND))
		reason = CGPOL_R_NONE;
	else if (protocol == IPPROTO_TCP)
		reason = port_in_rule_set(policy->rules, CGPOL_RSET_BIND_TCP, local.port) ? CGPOL_R_NONE : CGPOL_R_BIND_PORT;
	else if (protocol == IPPROTO_UDP)
		reason = port_in_rule_set(policy->rules, CGPOL_RSET_BIND_UDP, local.port) ? CGPOL_R_NONE : CGPOL_R_BIND_PORT;
	else
		reason = CGPOL_R_PROTOCOL;
	/* 1, never 3: the kernel still checks CAP_NET_BIND_SERVICE. */
	return verdict(hook, reason, policy, ref, v6 ? AF_INET6 : AF_INET, protocol, 0, &local);
}

/* Whether a socket is one that the egress allowlists can judge. */
static __always_inline bool tcp_or_udp(__u32 type, __u32 protocol)
{
	return (type == SOCK_STREAM && (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)) ||
	       (type == SOCK_DGRAM && protocol == IPPROTO_UDP);
}

SEC("cgroup/connect4")
int cgpol_connect4(struct bpf_sock_addr *ctx)
{
	return egress(ctx, CGPOL_HOOK_CONNECT4, false);
}

SEC("cgroup/connect6")
int cgpol_connect6(struct bpf_sock_addr *ctx)
{
	return egress(ctx, CGPOL_HOOK_CONNECT6, true);
}

SEC("cgroup/sendmsg4")
int cgpol_sendmsg4(struct bpf_sock_addr *ctx)
{
	return egress(ctx, CGPOL_HOOK_SENDMSG4, false);
}

SEC("cgroup/sendmsg6")
int cgpol_sendmsg6(struct bpf_sock_addr *ctx)
{
	return egress(ctx, CGPOL_HOOK_SENDMSG6, true);
}

SEC("cgroup/recvmsg4")
int cgpol_recvmsg4(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, false);
}

SEC("cgroup/recvmsg6")
int cgpol_recvmsg6(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, true);
}

SEC("cgroup/getpeername4")
int cgpol_getpeer4(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, false);
}

SEC("cgroup/getpeername6")
int cgpol_getpeer6(struct bpf_sock_addr *ctx)
{
	return translate_back(ctx, true);
}

SEC("cgroup/bind4")
int cgpol_bind4(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx, CGPOL_HOOK_BIND4, false);
}

SEC("cgroup/bind6")
int cgpol_bind6(struct bpf_sock_addr *ctx)
{
	return bind_check(ctx, CGPOL_HOOK_BIND6, true);
}

/*
 * Socket creation: raw sockets, which no sock_addr hook sees, are denied
 * when the policy asks; under an egress allowlist, so are inet sockets that
 * are neither TCP nor UDP (ICMP ping, UDP-Lite, SCTP), whose sends some
 * hooks miss.
 */
SEC("cgroup/sock_create")
int cgpol_socket(struct bpf_sock *sk)
{
	__u32 family = sk->family, type = sk->type, protocol = sk->protocol;

	if (family != AF_INET && family != AF_INET6)
		return ALLOW;
	const struct cgpol_ref *ref;
	const struct cgpol_policy *policy = current_policy(&ref);
	int reason = CGPOL_R_NONE;
	if (!policy)
		reason = CGPOL_R_NO_POLICY;
	else if (type == SOCK_RAW)
		reason = (policy->flags & CGPOL_F_DENY_RAW) ? CGPOL_R_RAW : CGPOL_R_NONE;
	else if ((policy->flags & (CGPOL_F_EGRESS_PORTS | CGPOL_F_EGRESS_CIDRS)) && !tcp_or_udp(type, protocol))
		reason = CGPOL_R_PROTOCOL;
	return verdict(CGPOL_HOOK_SOCKET, reason, policy, ref, family, protocol, type, NULL);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
