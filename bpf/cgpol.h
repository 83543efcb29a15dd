/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the BPF programs and the Go side. Go gets them from
 * bpf2go (-type), so each layout is written once, here.
 *
 * Layout of a decision:
 *   cgroup storage (cgpol_refs)     the attached cgroup's slot, written once
 *   cgpol_policies[slot]            that slot's policy map (array of maps)
 *   inner[0]                        struct cgpol_policy: flags and port bitmaps
 * Both array lookups are inlined by the verifier; the port check is one bit
 * test. Any missing step denies. Replacing a policy swaps cgpol_policies[slot]
 * in one update, so a reader sees the old policy or the new one, never a mix.
 */
#ifndef CGPOL_H
#define CGPOL_H

#include <linux/types.h>

/* How many cgroups can have a policy at once: the slots of cgpol_policies. */
#define CGPOL_MAX_CGROUPS 16384

/* Policy flags (struct cgpol_policy.flags). */
enum cgpol_flag {
	CGPOL_F_EGRESS_PORTS = 1 << 0, /* destination ports are allowlisted */
	CGPOL_F_AUDIT = 1 << 1,        /* count and report denials, but allow */
};

/* Port sets, each a bitmap of all 65536 ports. */
enum cgpol_port_set {
	CGPOL_SET_EGRESS_TCP = 0,
	CGPOL_SET_EGRESS_UDP = 1,
	CGPOL_PORT_SETS = 2,
};

/* Hooks, in the order that counters and events name them. */
enum cgpol_hook {
	CGPOL_HOOK_CONNECT4 = 0,
	CGPOL_HOOK_CONNECT6 = 1,
	CGPOL_HOOK_SENDMSG4 = 2,
	CGPOL_HOOK_SENDMSG6 = 3,
};

/*
 * The cgroup storage value, one per attached cgroup, shared by its hooks.
 * The kernel creates it zeroed when the first hook is linked: slot 0 means
 * no policy, which denies. cgpol writes it once, after linking every hook.
 */
struct cgpol_ref {
	__u32 slot;       /* index into cgpol_policies, plus one */
	__u32 _reserved;
	__u64 cgroup_id;  /* the attached cgroup */
};

/* A policy: the one value of a slot's inner array. */
struct cgpol_policy {
	__u64 cgroup_id;  /* owner; a ref naming another cgroup is denied */
	__u64 policy_id;  /* reserved for per-policy maps keyed by policy */
	__u32 flags;      /* enum cgpol_flag */
	__u32 _reserved;
	__u64 ports[CGPOL_PORT_SETS][65536 / 64]; /* bit p%64 of word p/64: port p allowed */
};

/* Per-CPU counters, one set per attached cgroup and hook. */
struct cgpol_hook_counters {
	__u64 allowed;
	__u64 denied;
	__u64 audited;    /* would have been denied, allowed by audit mode */
	__u64 _reserved;
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

#endif
