/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the BPF programs and the Go side. Go gets them from
 * bpf2go (-type), so each layout is written once, here.
 *
 * Layout of a decision:
 *   cgroup storage (cgpol_refs)     the attached cgroup's slot, written once
 *   cgpol_policies[slot]            that slot's policy map (array of maps)
 *   inner[0]                        struct cgpol_policy: flags, port bitmaps
 *   cgpol_cidr4/6[policy.rules]     only with CGPOL_F_EGRESS_CIDRS: an LPM trie
 *   cgpol_portsets[policy.rules]    port sets of CIDR rules and of bind
 *   cgpol_redirects[policy.rules]   only with CGPOL_F_REDIRECT
 * The array lookups are inlined by the verifier; a port check is one bit
 * test, an address check one LPM lookup. Any missing step denies.
 *
 * Replacing a policy swaps cgpol_policies[slot] in one update. The rule maps
 * of the new policy are written first, under the index that the old policy
 * does not use (rules = slot * 2 + generation), so a reader sees the old
 * policy and its rules, or the new policy and its rules, never a mix.
 */
#ifndef CGPOL_H
#define CGPOL_H

#include <linux/types.h>

/* How many cgroups can have a policy at once: the slots of cgpol_policies. */
#define CGPOL_MAX_CGROUPS 16384
/* Each slot has two generations of rule maps. */
#define CGPOL_MAX_RULE_SETS (2 * CGPOL_MAX_CGROUPS)

/* Policy flags (struct cgpol_policy.flags). */
enum cgpol_flag {
	CGPOL_F_EGRESS_PORTS = 1 << 0, /* destination ports are allowlisted (ports[]) */
	CGPOL_F_AUDIT = 1 << 1,        /* count and report denials, but allow */
	CGPOL_F_EGRESS_CIDRS = 1 << 2, /* destinations must match cgpol_cidr4/6 */
	CGPOL_F_BIND = 1 << 3,         /* bound ports must be in the bind port sets */
	CGPOL_F_REDIRECT = 1 << 4,     /* destinations may be rewritten (cgpol_redirects) */
	CGPOL_F_DENY_RAW = 1 << 5,     /* no SOCK_RAW inet sockets */
};

/* Port sets of struct cgpol_policy.ports: all 65536 ports each. */
enum cgpol_port_set {
	CGPOL_SET_EGRESS_TCP = 0,
	CGPOL_SET_EGRESS_UDP = 1,
	CGPOL_PORT_SETS = 2,
};

/* Port sets of cgpol_portsets, chunked: bind first, then those of CIDR rules. */
enum cgpol_rule_port_set {
	CGPOL_RSET_BIND_TCP = 0,
	CGPOL_RSET_BIND_UDP = 1,
	CGPOL_RSET_FIRST_CIDR = 2,
	CGPOL_RSET_ALL = 0xffff,  /* in a CIDR value: every port */
	CGPOL_RSET_NONE = 0xfffe, /* in a CIDR value: no port */
};

/* Hooks, as counters and events name them. */
enum cgpol_hook {
	CGPOL_HOOK_CONNECT4 = 0,
	CGPOL_HOOK_CONNECT6 = 1,
	CGPOL_HOOK_SENDMSG4 = 2,
	CGPOL_HOOK_SENDMSG6 = 3,
	CGPOL_HOOK_BIND4 = 4,
	CGPOL_HOOK_BIND6 = 5,
	CGPOL_HOOK_SOCKET = 6,
	CGPOL_HOOK_RECVMSG4 = 7,
	CGPOL_HOOK_RECVMSG6 = 8,
	CGPOL_HOOK_GETPEERNAME4 = 9,
	CGPOL_HOOK_GETPEERNAME6 = 10,
};

/* Why a call was denied (or would have been, in audit mode). */
enum cgpol_reason {
	CGPOL_R_NONE = 0,
	CGPOL_R_NO_POLICY = 1,       /* the cgroup's policy is missing or not its own */
	CGPOL_R_PORT = 2,            /* destination port not in allow-ports */
	CGPOL_R_CIDR = 3,            /* destination address not in allow-cidrs */
	CGPOL_R_CIDR_PORT = 4,       /* address allowed, but not with this port */
	CGPOL_R_PROTOCOL = 5,        /* neither TCP nor UDP under an allowlist */
	CGPOL_R_REDIRECT_TARGET = 6, /* the redirect target is not allowed */
	CGPOL_R_BIND_PORT = 7,       /* local port not in allow-bind */
	CGPOL_R_RAW = 8,             /* a raw socket */
};

/*
 * The cgroup storage value, one per attached cgroup, shared by its hooks.
 * The kernel creates it zeroed when the first hook is linked: slot 0 means
 * no policy, which denies. cgpol writes it once, after linking the hooks.
 */
struct cgpol_ref {
	__u32 slot;       /* index into cgpol_policies, plus one */
	__u32 _reserved;
	__u64 cgroup_id;  /* the attached cgroup */
};

/* A policy: the one value of a slot's inner array. */
struct cgpol_policy {
	__u64 cgroup_id;  /* owner; a ref naming another cgroup is denied */
	__u32 flags;      /* enum cgpol_flag */
	__u32 rules;      /* index of this policy's rule maps: slot * 2 + generation */
	__u64 epoch;      /* random, new for every policy published: binds cgpol_sk_memo */
	__u64 ports[CGPOL_PORT_SETS][65536 / 64]; /* bit p%64 of word p/64: port p allowed */
};

/* Per-CPU counters, one set per attached cgroup and hook. */
struct cgpol_hook_counters {
	__u64 allowed;
	__u64 denied;
	__u64 audited;    /* would have been denied, allowed by audit mode */
	__u64 redirected; /* allowed, to a rewritten destination */
};

/* Key of a policy's chunked port sets (cgpol_portsets). */
struct cgpol_port_key {
	__u16 set;   /* enum cgpol_rule_port_set, or a CIDR rule's set */
	__u16 chunk; /* port / 512 */
};

/* A chunk of 512 ports: bit p%512 set means port p allowed. */
struct cgpol_port_chunk {
	__u64 bits[8];
};

/* LPM trie keys of the address rules. */
struct cgpol_cidr4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct cgpol_cidr6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* What the longest matching prefix allows: a port set per protocol. */
struct cgpol_cidr_value {
	__u16 tcp; /* a cgpol_portsets set, or CGPOL_RSET_ALL / CGPOL_RSET_NONE */
	__u16 udp;
};

/*
 * The per-socket memo of the last allowed IPv4 destination under address
 * rules: one word, (address << 32 | port << 16 | protocol << 8 | 1) XOR the
 * policy's epoch. It is written with one store, so threads sharing a socket
 * never leave a half-written memo; a new policy has a new epoch, so an old
 * memo never matches it. Only allowed verdicts are remembered.
 */
/* Key of a redirect rule. An all-zero address matches any address. */
struct cgpol_redirect_key {
	__u8 addr[16];  /* IPv4 in the first 4 bytes */
	__u16 port;     /* host order */
	__u8 protocol;  /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;    /* 4 or 6 */
};

/* Where a redirected call goes instead; same family as the key. */
struct cgpol_redirect_target {
	__u8 addr[16];
	__u16 port;     /* host order */
	__u16 _reserved;
};

/*
 * What a redirected socket dialled, so that getpeername and recvmsg can
 * show the application the address it asked for. Keyed by socket cookie and
 * target, in an LRU map.
 */
struct cgpol_revnat_key {
	__u64 cookie;
	__u8 addr[16];  /* the target */
	__u16 port;
	__u16 family;
	__u32 _reserved;
};

struct cgpol_revnat_value {
	__u8 addr[16];  /* what the application dialled */
	__u16 port;
	__u16 _reserved;
};

/* One deny or audit event, in the cgpol_events ring buffer. */
struct cgpol_event {
	__u64 boot_ns;        /* bpf_ktime_get_boot_ns() */
	__u64 cgroup_id;      /* the attached cgroup whose policy decided */
	__u64 task_cgroup_id; /* the cgroup of the calling task (maybe a child) */
	__u32 pid;            /* 0 where the kernel cannot tell */
	__u16 hook;           /* enum cgpol_hook */
	__u8 audit;           /* 1: allowed by audit mode; 0: denied */
	__u8 reason;          /* enum cgpol_reason */
	__u16 family;         /* AF_INET, AF_INET6 */
	__u16 port;           /* host order */
	__u8 protocol;        /* IPPROTO_* */
	__u8 type;            /* SOCK_* (socket creation) */
	__u16 _reserved;
	__u8 addr[16];        /* IPv4 in the first 4 bytes */
	char comm[16];
};

/* Global counters (cgpol_stats, per CPU). */
enum cgpol_stat {
	CGPOL_STAT_EVENTS_LOST = 0, /* the ring buffer was full */
	CGPOL_STATS = 1,
};

/* What userspace remembers about an attachment; BPF never reads it. */
struct cgpol_attachment {
	__u64 attached_unix_ns;
	__u32 slot;          /* the slot claimed for the cgroup, plus one */
	__u32 _reserved;
	char name[96];       /* container or unit name, NUL-terminated */
	char container[72];  /* the runtime's container id, if any */
	char manager[16];    /* what attached it: cli, hook, nri */
};

/* Features that the loader turns on when the kernel has them. */
enum cgpol_feature {
	CGPOL_FEAT_TASK_INFO = 1 << 0, /* get_current_pid_tgid/comm in cgroup programs (6.1) */
	CGPOL_FEAT_SK_MEMO = 1 << 1,   /* sk_storage_get in sock_addr programs */
};

#endif
