/* SPDX-License-Identifier: MIT */
/*
 * A back-end's control socket (--control PATH): a unix stream socket for the host's tools and
 * guestabid. One connection at a time, one request per line (at most 255 bytes), one JSON
 * object per line back, made by the program's handler. A client that sends a longer line or
 * does not read its replies (1 s) is disconnected. The socket and its connection live in an
 * epoll set of their own: the program watches devctl_fd() and calls devctl_process().
 */
#ifndef GABI_DEVCTL_H
#define GABI_DEVCTL_H

#include <stddef.h>

#include <jansson.h>

struct devctl;

/* The reply to one request line (NUL-terminated, newline removed), a new reference. */
typedef json_t *(*devctl_fn)(char *line, void *userdata);

/* 0, or -errno with why filled. An existing socket at path is replaced. */
int devctl_open(const char *path, devctl_fn fn, void *userdata, struct devctl **ret, char *why,
                size_t size);
/* Closes the connection and the socket, unlinks it. NULL-safe; returns NULL. */
struct devctl *devctl_close(struct devctl *c);
/* Readable when there is something for devctl_process(). */
int devctl_fd(const struct devctl *c);
void devctl_process(struct devctl *c);

struct gabi_vhost_backend;
/* What every back-end reports about a port, set into obj: "socket", "mode", "connected",
 * "suspended", the "features" and "protocol_features" negotiated ("0x..."), the
 * "started_rings" ({index, size, enabled}), "connections" so far, "last_error" (why the last
 * one closed), and the last "state_transfer" when there was one. */
void devctl_vhost_port(json_t *obj, struct gabi_vhost_backend *b, const char *socket);

#endif
