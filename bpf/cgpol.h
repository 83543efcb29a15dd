/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared by the BPF programs and the Go side. Go gets them from
 * bpf2go (-type), so each layout is written once, here.
 *
 * Layout of a decision:
 *   cgroup storage (cgpol_refs)       which policy the attached cgroup has
 *   cgpol_ports[policy_id]            that policy's port sets (inner hash)
 *   inner[{set, port / 512}]          a 512-bit chunk of allowed ports
 * Every step is one O(1) lookup. A missing step denies.
 */
#ifndef CGPOL_H
#define CGPOL_H

#include <linux/types.h>

/* Policy flags, kept in struct cgpol_ref next to the policy id. */
enum cgpol_flag {
	CGPOL_F_VALID = 1 << 0,     /* the cgroup has a complete policy; unset denies all */
	CGPOL_F_EGRESS_PORTS = 1 << 1, /* destination ports are allowlisted */
	CGPOL_F_AUDIT = 1 << 2,     /* count and report denials, but allow */
};

/* Port sets inside one policy's inner map. */
enum cgpol_port_set {
	CGPOL_SET_EGRESS_TCP = 0,
	CGPOL_SET_EGRESS_UDP = 1,
};

/* Hooks, in the order that counters and events name them. */
enum cgpol_hook {
	CGPOL_HOOK_CONNECT4 = 0,
	CGPOL_HOOK_CONNECT6 = 1,
	CGPOL_HOOK_SENDMSG4 = 2,
	CGPOL_HOOK_SENDMSG6 = 3,
};

/*
 * The value of the cgroup storage: one per attached cgroup, shared by all of
 * its hooks. The kernel creates it zeroed when the first hook is attached,
 * which denies everything until cgpol writes the policy in. An update
 * replaces the whole value at once (RCU), so a reader never sees half of it.
 */
struct cgpol_ref {
	__u64 policy_id;  /* key into cgpol_ports and later per-policy maps */
	__u64 cgroup_id;  /* the attached cgroup, for events and status */
	__u32 flags;      /* enum cgpol_flag */
	__u32 _reserved;
};

/* Per-CPU counters, one set per attached cgroup and hook. */
struct cgpol_hook_counters {
	__u64 allowed;
	__u64 denied;
	__u64 audited;    /* would have been denied, allowed by audit mode */
	__u64 _reserved;
};

/* Key of a policy's inner port map: a port set and a chunk of 512 ports. */
struct cgpol_port_key {
	__u16 set;        /* enum cgpol_port_set */
	__u16 chunk;      /* port / CGPOL_PORTS_PER_CHUNK */
};

#define CGPOL_PORTS_PER_CHUNK 512

/* Value of the inner port map: bit (port % 512) set means allowed. */
struct cgpol_port_chunk {
	__u64 bits[CGPOL_PORTS_PER_CHUNK / 64];
};

/* What userspace remembers about an attachment; BPF never reads it. */
struct cgpol_attachment {
	__u64 attached_unix_ns;
	char name[112];   /* container or unit name, NUL-terminated */
};

#endif
