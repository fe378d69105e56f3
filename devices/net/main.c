/* SPDX-License-Identifier: MIT */
/*
 * guestabi-net: the program. Options, the compat mode from the catalog, the ports, and one
 * small epoll loop (or a busy-polling one) until SIGTERM/SIGINT.
 */

#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/abi.h>

#include <guestabi/util.h>
#include "devmain.h"
#include "net.h"

#define MAX_PORTS    64
#define MAX_CATALOGS 16
#define POLL_EVERY   256 /* busy-poll passes per look at the control sockets */

/* ---- epoll helpers --------------------------------------------------------------------------- */

int net_watch(struct net *n, int fd, struct source *src, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = src};

    return epoll_ctl(n->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

void net_unwatch(struct net *n, int fd)
{
    epoll_ctl(n->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* ---- modes ------------------------------------------------------------------------------------
 */

/* guestabi-net's own condition on a mode: DEVICE_STATE needs the catalog's rule for its state
 * versions, one this build can write. */
static bool net_mode_runnable(const struct gabi_catalog *cat, const struct gabi_mode *m, char *why,
                              size_t size, void *userdata)
{
    (void)userdata;
    if (m->protocol_features & (1ull << GABI_PF_DEVICE_STATE)) {
        struct net probe = {0};
        char because[192];

        if (net_state_setup(&probe, gabi_catalog_find_device_type(cat, NET_STATE_TYPE), because,
                            sizeof(because)) < 0) {
            snprintf(why, size, "offers device-state transfer, but %s", because);
            return false;
        }
    }
    return true;
}

static const struct devmain net_devmain = {
    .prog = "guestabi-net",
    .cls = GABI_CLASS_NET,
    .features = NET_DEVICE_FEATURES,
    .queues_word = "queue pairs",
    .runnable = net_mode_runnable,
};

/* ---- the loop ------------------------------------------------------------------------------- */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static void on_event(struct net *n, struct source *src)
{
    struct net_port *p = src->port;

    switch (src->kind) {
    case SRC_SOCKET:
        gabi_vhost_backend_dispatch(p->b);
        break;
    case SRC_KICK: {
        struct gabi_vhost_vring *vr = gabi_vhost_backend_vring(p->b, src->index);

        if (!vr)
            break;
        gabi_vhost_vring_kick_drain(vr);
        if (!net_vring_is_rx(src->index))
            net_port_tx(p, src->index);
        else if (p->fwd == FWD_TAP && p->tap_blocked)
            net_port_tap_input(p);
        else if (p->fwd == FWD_GENERATE)
            net_port_generate(p);
        break;
    }
    case SRC_TAP:
        net_port_tap_input(p);
        break;
    case SRC_SIGNAL:
        n->stop = true;
        break;
    case SRC_STATE:
        gabi_vhost_backend_process_state(p->b);
        break;
    case SRC_CONTROL:
        net_control_event(n, src);
        break;
    }
}

/* One pass over the ports: the chains and frames it moved. */
static unsigned poll_all(struct net *n, bool only_pending)
{
    unsigned work = 0;

    for (unsigned i = 0; i < n->n_ports; i++) {
        struct net_port *p = &n->ports[i];

        for (unsigned k = 0; k < p->n_tx_active; k++)
            if (!only_pending || p->tx_pending[p->tx_active[k]])
                work += net_port_tx(p, p->tx_active[k]);
        if (!only_pending && p->fwd == FWD_TAP)
            net_port_tap_input(p);
        if (p->fwd == FWD_GENERATE && (!only_pending || p->gen_pending))
            work += net_port_generate(p);
    }
    return work;
}

static void run(struct net *n)
{
    unsigned pass = 0;

    while (!n->stop) {
        struct epoll_event ev[64];
        int k = 0;

        if (!n->busy_poll || pass++ % POLL_EVERY == 0) {
            k = epoll_wait(n->epfd, ev, 64, n->busy_poll || n->any_pending ? 0 : -1);
            if (k < 0 && errno != EINTR) {
                gabi_log(GABI_LOG_ERR, "guestabi-net", "epoll_wait: %s", strerror(errno));
                return;
            }
        }
        /* a source whose fd closed during this batch gets at most a spurious call, which
         * finds nothing to do (sources outlive their fds) */
        for (int i = 0; i < k; i++)
            on_event(n, ev[i].data.ptr);
        if (n->busy_poll) {
            /* an empty pass: let the guest's CPU have the ring's cache lines a moment
             * before looking again (a tight loop of loads slows its stores to them) */
            n->passes++;
            if (poll_all(n, false) == 0) {
                n->idle_passes++;
                cpu_relax();
            }
        } else if (n->any_pending) {
            n->any_pending = false;
            poll_all(n, true);
        }
    }
}

/* ---- set-up -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: guestabi-net --socket PATH [--tap NAME | --loopback | --sink |\n"
            "                    --generate SIZE] [--socket PATH ...]\n"
            "                    [--mode NAME] [--catalog DIR] [--control PATH] [--busy-poll]\n"
            "                    [--ready-fd FD] [-v]\n"
            "       guestabi-net --list-modes [--catalog DIR]\n"
            "\n"
            "A vhost-user-net back-end that runs one guestabi compat mode. Each --socket is a\n"
            "port (a vhost-user socket QEMU connects to as a client) that forwards its guest's\n"
            "frames:\n"
            "  --tap NAME     to and from the Linux tap device NAME (created if missing)\n"
            "  --loopback     back to the same guest\n"
            "  (neither)      to the next port given with neither: two ports form a switch\n"
            "  --sink         nowhere: frames are checked, counted and dropped (benchmarks; as\n"
            "                 testpmd's rxonly)\n"
            "  --generate SIZE  nowhere, and the guest's RX buffers are filled with UDP frames\n"
            "                 of SIZE bytes (60..65535, Ethernet header included) as fast as it\n"
            "                 posts them (benchmarks; as testpmd's txonly)\n"
            "\n"
            "Options:\n"
            "  --mode NAME    the compat mode (a catalog virtio-net mode); default: the newest\n"
            "                 one guestabi-net can run\n"
            "  --list-modes   print the catalog modes guestabi-net can run, newest first\n"
            "  --catalog DIR  also read catalog documents from DIR (repeatable)\n"
            "  --control PATH a control socket: \"stats [PORT]\", \"link PORT up|down\" (one\n"
            "                 request per line, one JSON reply per line)\n"
            "  --busy-poll    poll the rings instead of waiting for kicks (one core, 100%%)\n"
            "  --ready-fd FD  write \"READY\\n\" to FD once every socket listens, then close it\n"
            "  -v, --verbose  log every vhost-user message\n"
            "  -h, --help     this text\n");
}

struct port_arg {
    const char *path;
    const char *tap;
    bool loopback;
    bool sink;
    size_t generate; /* frame size, 0: no */
};

static int setup_ports(struct net *n, struct port_arg *args, unsigned n_args)
{
    struct gabi_vhost_backend_config cfg = {
        .cls = GABI_CLASS_NET,
        .mode = n->mode,
        .device_features = NET_DEVICE_FEATURES,
        .state = n->mode->protocol_features & (1ull << GABI_PF_DEVICE_STATE) ? &n->state_ops : NULL,
    };
    struct net_port *unpaired = NULL;

    n->ports = calloc(n_args, sizeof(*n->ports));
    if (!n->ports)
        return -ENOMEM;
    n->n_ports = n_args;
    for (unsigned i = 0; i < n_args; i++) {
        struct net_port *p = &n->ports[i];
        struct gabi_error err = {0};
        char why[256];
        unsigned nv;
        int r;

        p->net = n;
        p->id = i;
        p->path = (char *)args[i].path;
        p->tap.fd = -1;
        p->hdr_len = 12;
        p->sock_src = (struct source){SRC_SOCKET, p, 0};
        p->state_src = (struct source){SRC_STATE, p, 0};
        p->link_up = true;
        p->n_q = n->mode->max_queue_pairs;
        p->q = calloc(p->n_q, sizeof(*p->q));
        if (!p->q)
            return -ENOMEM;
        p->fwd = args[i].tap        ? FWD_TAP
                 : args[i].loopback ? FWD_LOOPBACK
                 : args[i].sink     ? FWD_SINK
                 : args[i].generate ? FWD_GENERATE
                                    : FWD_PEER;
        if (p->fwd == FWD_PEER) {
            if (unpaired) {
                unpaired->peer = p;
                p->peer = unpaired;
                unpaired = NULL;
            } else {
                unpaired = p;
            }
        }
        cfg.name = p->path;
        r = gabi_vhost_backend_new(&cfg, &net_port_ops, p, &p->b, &err);
        if (r < 0) {
            fprintf(stderr, "guestabi-net: %s: %s\n", p->path, err.message);
            return r;
        }
        nv = gabi_vhost_backend_n_vrings(p->b);
        p->vring_src = calloc(nv, sizeof(*p->vring_src));
        p->tx_pending = calloc(nv, sizeof(*p->tx_pending));
        p->tx_active = calloc(nv, sizeof(*p->tx_active));
        if (!p->vring_src || !p->tx_pending || !p->tx_active)
            return -ENOMEM;
        for (unsigned v = 0; v < nv; v++)
            p->vring_src[v] = (struct source){SRC_KICK, p, v};
        if (p->fwd == FWD_GENERATE) {
            p->gen_len = args[i].generate;
            p->gen_frame = calloc(1, NET_HDR_MAX + p->gen_len);
            if (!p->gen_frame)
                return -ENOMEM;
            net_frame_template(p->gen_frame + NET_HDR_MAX, p->gen_len, i);
        }
        if (p->fwd == FWD_TAP) {
            r = net_tap_open(&p->tap, args[i].tap, why, sizeof(why));
            if (r < 0) {
                fprintf(stderr, "guestabi-net: %s\n", why);
                return r;
            }
            p->tap.src = (struct source){SRC_TAP, p, 0};
            r = net_watch(n, p->tap.fd, &p->tap.src, EPOLLIN);
            if (r < 0)
                return r;
        }
    }
    if (unpaired) {
        fprintf(stderr,
                "guestabi-net: port %s has no peer: give it --tap, --loopback, --sink or "
                "--generate, or another --socket\n",
                unpaired->path);
        return -EINVAL;
    }
    for (unsigned i = 0; i < n_args; i++) {
        struct gabi_error err = {0};
        int r = gabi_vhost_backend_listen(n->ports[i].b, n->ports[i].path, &err);

        if (r < 0) {
            fprintf(stderr, "guestabi-net: %s: %s\n", err.where, err.message);
            return r;
        }
    }
    return 0;
}

/* The program's teardown, from every way out of main (a fresh struct net included). */
static void teardown(struct net *n)
{
    for (unsigned i = 0; i < n->n_ports; i++) {
        struct net_port *p = &n->ports[i];

        p->b = gabi_vhost_backend_free(p->b);
        if (p->tap.fd >= 0) {
            net_unwatch(n, p->tap.fd);
            net_tap_close(&p->tap);
        }
        free(p->gen_frame);
        free(p->vring_src);
        free(p->tx_pending);
        free(p->tx_active);
        free(p->q);
        free(p->save_buf);
        free(p->load_buf);
    }
    net_control_close(n);
    free(n->ports);
    free(n->rx_elems);
    free(n->tx_elems);
    free(n->frame);
    close_and_clear(&n->epfd);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"tap", required_argument, NULL, 't'},
        {"loopback", no_argument, NULL, 'l'},       {"sink", no_argument, NULL, 'S'},
        {"generate", required_argument, NULL, 'g'}, {"mode", required_argument, NULL, 'm'},
        {"list-modes", no_argument, NULL, 'L'},     {"catalog", required_argument, NULL, 'c'},
        {"busy-poll", no_argument, NULL, 'b'},      {"control", required_argument, NULL, 'C'},
        {"ready-fd", required_argument, NULL, 'r'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    struct port_arg ports[MAX_PORTS] = {{0}};
    const char *catalogs[MAX_CATALOGS], *mode_name = NULL, *control = NULL;
    unsigned n_ports = 0, n_catalogs = 0;
    bool list = false;
    int ready_fd = -1, c;
    _cleanup_(gabi_catalog_freep) struct gabi_catalog *cat = NULL;
    _cleanup_close_ int sfd = -1;
    _cleanup_(teardown) struct net n = {.epfd = -1};
    struct gabi_error err = {0};
    struct gabi_vhost_mode mode;
    struct source sig_src = {SRC_SIGNAL, NULL, 0};
    sigset_t mask;
    uint64_t v;

    devmain_init("guestabi-net");
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (n_ports == MAX_PORTS) {
                fprintf(stderr, "guestabi-net: at most %d ports\n", MAX_PORTS);
                return 2;
            }
            ports[n_ports++].path = optarg;
            break;
        case 't':
        case 'l':
        case 'S':
        case 'g': {
            struct port_arg *a = n_ports ? &ports[n_ports - 1] : NULL;
            const char *name = c == 't'   ? "tap"
                               : c == 'l' ? "loopback"
                               : c == 'S' ? "sink"
                                          : "generate";

            if (!a || a->tap || a->loopback || a->sink || a->generate) {
                fprintf(stderr, "guestabi-net: --%s follows the --socket it applies to\n", name);
                return 2;
            }
            if (c == 'g' &&
                (gabi_parse_u64(optarg, &v) < 0 || v < NET_GEN_MIN || v > NET_MAX_FRAME)) {
                fprintf(stderr, "guestabi-net: --generate wants a frame size, %u..%u bytes\n",
                        NET_GEN_MIN, NET_MAX_FRAME);
                return 2;
            }
            if (c == 't')
                a->tap = optarg;
            else if (c == 'l')
                a->loopback = true;
            else if (c == 'S')
                a->sink = true;
            else
                a->generate = (size_t)v;
            break;
        }
        case 'm':
            mode_name = optarg;
            break;
        case 'L':
            list = true;
            break;
        case 'c':
            if (n_catalogs == MAX_CATALOGS) {
                fprintf(stderr, "guestabi-net: at most %d catalog directories\n", MAX_CATALOGS);
                return 2;
            }
            catalogs[n_catalogs++] = optarg;
            break;
        case 'b':
            n.busy_poll = true;
            break;
        case 'C':
            control = optarg;
            break;
        case 'r':
            if (gabi_parse_u64(optarg, &v) < 0 || v > 1u << 20) {
                fprintf(stderr, "guestabi-net: --ready-fd wants an fd number\n");
                return 2;
            }
            ready_fd = (int)v;
            break;
        case 'v':
            gabi_log_set_max_level(GABI_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (!list && n_ports == 0)) {
        usage(stderr);
        return 2;
    }
    if (gabi_catalog_load_default(catalogs, n_catalogs, &cat, &err) < 0) {
        fprintf(stderr, "guestabi-net: catalog: %s%s%s\n", err.where, err.where[0] ? ": " : "",
                err.message);
        return 1;
    }
    if (list) {
        devmain_list_modes(&net_devmain, cat);
        return 0;
    }
    if (devmain_pick_mode(&net_devmain, cat, mode_name, &mode) < 0)
        return 1;
    n.mode = &mode;
    if (mode.protocol_features & (1ull << GABI_PF_DEVICE_STATE)) {
        char why[256];

        /* mode_runnable() checked it: the catalog's rule, versions this build writes */
        net_state_setup(&n, gabi_catalog_find_device_type(cat, NET_STATE_TYPE), why, sizeof(why));
    }

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    n.epfd = epoll_create1(EPOLL_CLOEXEC);
    n.rx_elems = calloc(NET_MAX_RX_BUFS, sizeof(*n.rx_elems));
    n.tx_elems = calloc(NET_BURST, sizeof(*n.tx_elems));
    n.frame = malloc(NET_HDR_MAX + NET_MAX_FRAME);
    if (sfd < 0 || n.epfd < 0 || !n.rx_elems || !n.tx_elems || !n.frame ||
        net_watch(&n, sfd, &sig_src, EPOLLIN) < 0) {
        fprintf(stderr, "guestabi-net: set-up failed: %s\n", strerror(errno));
        return 1;
    }
    if (setup_ports(&n, ports, n_ports) < 0)
        return 1;
    if (control) {
        char why[256];

        if (net_control_open(&n, control, why, sizeof(why)) < 0) {
            fprintf(stderr, "guestabi-net: %s\n", why);
            return 1;
        }
    }
    gabi_log(GABI_LOG_INFO, "guestabi-net", "mode %s, %u port%s%s%s%s", mode.name, n.n_ports,
             n.n_ports == 1 ? "" : "s", n.busy_poll ? ", busy-polling" : "",
             n.state_ops.version ? ", state version " : "",
             n.state_ops.version ? n.state_ops.version : "");
    gabi_ready_fd_signal(&ready_fd);
    run(&n);
    gabi_log(GABI_LOG_INFO, "guestabi-net", "stopping");
    return 0;
}
