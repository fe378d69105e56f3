/* SPDX-License-Identifier: MIT */
/*
 * guestabi-blk: the program. Options, the compat mode from the catalog, the disk, and one
 * epoll loop until SIGTERM/SIGINT.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <guestabi/abi.h>

#include "blk.h"
#include <guestabi/util.h>
#include "devmain.h"

#define MAX_CATALOGS 16

/* ---- modes -------------------------------------------------------------------------------- */

/* The catalog's device-type rule for the disk's state: NULL when it has none, or one that
 * writes nothing. */
static const struct gabi_device_type *state_rule(const struct gabi_catalog *cat)
{
    const struct gabi_device_type *t = gabi_catalog_find_device_type(cat, GABI_BLK_STATE_TYPE);

    if (!t || (t->writes.n == 0 && !t->writes.version))
        return NULL;
    return t;
}

/* guestabi-blk's own conditions on a mode, for a disk that is read-only or not (userdata:
 * the bool --readonly). */
static bool blk_mode_runnable(const struct gabi_catalog *cat, const struct gabi_mode *m, char *why,
                              size_t size, void *userdata)
{
    const bool *readonly = userdata;

    if (!(m->protocol_features & (1ull << GABI_PF_CONFIG))) {
        snprintf(why, size, "has no VHOST_USER_PROTOCOL_F_CONFIG (vhost-user-blk needs it)");
        return false;
    }
    if ((m->protocol_features & (1ull << GABI_PF_DEVICE_STATE)) && !state_rule(cat)) {
        snprintf(why, size,
                 "needs VHOST_USER_PROTOCOL_F_DEVICE_STATE, and the catalog has no device-type "
                 "rule %s (which state versions it writes and loads)",
                 GABI_BLK_STATE_TYPE);
        return false;
    }
    if ((m->features & (1ull << GABI_BLK_F_RO)) && !*readonly) {
        snprintf(why, size, "is a read-only device ABI (VIRTIO_BLK_F_RO): give --readonly");
        return false;
    }
    return true;
}

/* ---- device state: the catalog's rule ------------------------------------------------------- */

/* The newest version the rule writes. */
static const char *rule_writes(const struct gabi_device_type *t)
{
    return t->writes.n ? t->writes.list[0] : t->writes.version;
}

static void versions_text(const struct gabi_versions *vs, char *buf, size_t size)
{
    size_t len = 0;

    buf[0] = '\0';
    if (!vs->list && vs->version) {
        snprintf(buf, size, "%s down to %s", vs->version, vs->minimum ? vs->minimum : "any");
        return;
    }
    for (size_t i = 0; i < vs->n && len + 1 < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? ", " : "", vs->list[i]);
    if (vs->n == 0)
        snprintf(buf, size, "none");
}

static int state_accept(const char *version, char *why, size_t why_size, void *userdata)
{
    const struct gabi_device_type *t = userdata;
    char loads[256];

    if (gabi_versions_accepts(&t->loads, version))
        return 0;
    versions_text(&t->loads, loads, sizeof(loads));
    snprintf(why, why_size, "the catalog's rule %s loads %s", t->name, loads);
    return -EPROTONOSUPPORT;
}

/* ---- options ------------------------------------------------------------------------------ */

/* "4096", "64M", "1G": bytes with an optional K/M/G/T (binary) suffix. */
static int parse_size(const char *s, uint64_t *ret)
{
    static const char units[] = "KMGT";
    size_t len = strlen(s);
    char num[32];
    unsigned shift = 0;
    uint64_t v;

    if (len == 0 || len >= sizeof(num))
        return -EINVAL;
    memcpy(num, s, len + 1);
    for (unsigned i = 0; i < 4; i++) {
        if (num[len - 1] == units[i] || num[len - 1] == units[i] + ('a' - 'A')) {
            shift = 10u * (i + 1);
            num[len - 1] = '\0';
            break;
        }
    }
    if (gabi_parse_u64(num, &v) < 0 || (shift && v > (UINT64_MAX >> shift)))
        return -EINVAL;
    *ret = v << shift;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: guestabi-blk --socket PATH (--disk FILE [--size SIZE] | --ram SIZE)\n"
               "                    [--mode NAME] [--catalog DIR] [--serial ID] [--readonly]\n"
               "                    [--control PATH] [--ready-fd FD] [-v]\n"
               "       guestabi-blk --list-modes [--catalog DIR] [--readonly]\n"
               "\n"
               "A vhost-user-blk back-end serving a local disk in one guestabi compat mode. QEMU\n"
               "connects to the socket as a client (-device vhost-user-blk-pci).\n"
               "\n"
               "Options:\n"
               "  --socket PATH  the vhost-user socket to listen on\n"
               "  --disk FILE    a file (or block device) as the disk\n"
               "  --size SIZE    create FILE if missing and grow it to SIZE (bytes; K, M, G, T)\n"
               "  --ram SIZE     a RAM disk of SIZE bytes (memfd) instead of a file\n"
               "  --mode NAME    the compat mode (a catalog virtio-blk mode); default: the newest\n"
               "                 one guestabi-blk can run\n"
               "  --list-modes   print the catalog modes guestabi-blk can run, newest first\n"
               "  --catalog DIR  also read catalog documents from DIR (repeatable)\n"
               "  --serial ID    the disk's serial (GET_ID), up to 20 characters\n"
               "  --readonly     refuse writes (the file is opened read-only)\n"
               "  --control PATH a control socket: \"stats\" (one request per line, one JSON\n"
               "                 reply per line)\n"
               "  --ready-fd FD  write \"READY\\n\" to FD once the socket listens, then close it\n"
               "  -v, --verbose  log every vhost-user message\n"
               "  -h, --help     this text\n");
}

struct args {
    const char *socket, *disk, *mode, *serial, *control;
    const char *catalogs[MAX_CATALOGS];
    unsigned n_catalogs;
    uint64_t size, ram;
    bool list, readonly;
    int ready_fd;
};

/* 0 to go on, or the exit status (-1: 0 after --help). */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},  {"disk", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 'z'},    {"ram", required_argument, NULL, 'R'},
        {"mode", required_argument, NULL, 'm'},    {"list-modes", no_argument, NULL, 'L'},
        {"catalog", required_argument, NULL, 'c'}, {"serial", required_argument, NULL, 'S'},
        {"readonly", no_argument, NULL, 'o'},      {"ready-fd", required_argument, NULL, 'r'},
        {"control", required_argument, NULL, 'C'}, {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    uint64_t v;
    int c;

    a->ready_fd = -1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            a->socket = optarg;
            break;
        case 'd':
            a->disk = optarg;
            break;
        case 'z':
        case 'R':
            if (parse_size(optarg, &v) < 0 || v == 0 || v % BLK_SECTOR) {
                fprintf(stderr, "guestabi-blk: --%s wants a size in bytes, a multiple of %u\n",
                        c == 'z' ? "size" : "ram", BLK_SECTOR);
                return 2;
            }
            *(c == 'z' ? &a->size : &a->ram) = v;
            break;
        case 'm':
            a->mode = optarg;
            break;
        case 'L':
            a->list = true;
            break;
        case 'c':
            if (a->n_catalogs == MAX_CATALOGS) {
                fprintf(stderr, "guestabi-blk: at most %d catalog directories\n", MAX_CATALOGS);
                return 2;
            }
            a->catalogs[a->n_catalogs++] = optarg;
            break;
        case 'S':
            if (strlen(optarg) > VIRTIO_BLK_ID_BYTES) {
                fprintf(stderr, "guestabi-blk: --serial takes at most %u characters\n",
                        VIRTIO_BLK_ID_BYTES);
                return 2;
            }
            a->serial = optarg;
            break;
        case 'o':
            a->readonly = true;
            break;
        case 'C':
            a->control = optarg;
            break;
        case 'r':
            if (gabi_parse_u64(optarg, &v) < 0 || v > 1u << 20) {
                fprintf(stderr, "guestabi-blk: --ready-fd wants an fd number\n");
                return 2;
            }
            a->ready_fd = (int)v;
            break;
        case 'v':
            gabi_log_set_max_level(GABI_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (a->list)
        return 0;
    if (!a->socket || !!a->disk == !!a->ram) {
        fprintf(stderr, "guestabi-blk: give --socket and either --disk or --ram\n");
        usage(stderr);
        return 2;
    }
    if (a->size && !a->disk) {
        fprintf(stderr, "guestabi-blk: --size goes with --disk (--ram takes its own size)\n");
        return 2;
    }
    return 0;
}

/* ---- the program -------------------------------------------------------------------------- */

/* Serve an initialised device until SIGTERM or SIGINT: 0, or -errno. */
static int serve(struct blk *k, struct args *a, const struct gabi_vhost_mode *mode,
                 const sigset_t *mask)
{
    struct blk_source sig_src = {BLK_SRC_SIGNAL, 0};
    _cleanup_close_ int sfd = signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
    char why[512];
    int r = 0;

    if (a->control && (r = blk_control_open(k, a->control, why, sizeof(why))) < 0) {
        fprintf(stderr, "guestabi-blk: %s\n", why);
        return r;
    }
    if (sfd < 0 || blk_watch(k, sfd, &sig_src, EPOLLIN) < 0) {
        fprintf(stderr, "guestabi-blk: signalfd: %s\n", strerror(errno));
        return -errno;
    }
    gabi_log(GABI_LOG_INFO, "guestabi-blk",
             "mode %s, %s %s of %" PRIu64 " bytes%s, %u queue%s of up to %" PRIu32, mode->name,
             k->disk.kind == BLK_DISK_RAM ? "RAM disk" : "disk",
             k->disk.kind == BLK_DISK_RAM ? "(memfd)" : k->disk.path, k->disk.size,
             k->disk.readonly ? " read-only" : "", mode->max_queue_pairs,
             mode->max_queue_pairs == 1 ? "" : "s", mode->max_queue_size);
    gabi_ready_fd_signal(&a->ready_fd);
    while (!k->stop) {
        r = blk_run_once(k, -1);
        if (r < 0) {
            gabi_log(GABI_LOG_ERR, "guestabi-blk", "epoll_wait: %s", strerror(-r));
            break;
        }
    }
    gabi_log(GABI_LOG_INFO, "guestabi-blk", "stopping");
    return r < 0 ? r : 0;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    _cleanup_(gabi_catalog_freep) struct gabi_catalog *cat = NULL;
    struct gabi_error err = {0};
    struct gabi_vhost_mode mode;
    struct devmain dm;
    struct blk_disk disk;
    struct blk k;
    struct blk_options opts;
    char why[512];
    sigset_t mask;
    int r;

    devmain_init("guestabi-blk");
    r = parse_args(argc, argv, &a);
    if (r)
        return r < 0 ? 0 : r;
    dm = (struct devmain){.prog = "guestabi-blk",
                          .cls = GABI_CLASS_BLK,
                          .features = BLK_DEVICE_FEATURES | (1ull << GABI_BLK_F_RO),
                          .queues_word = "queues",
                          .runnable = blk_mode_runnable,
                          .userdata = &a.readonly};
    if (gabi_catalog_load_default(a.catalogs, a.n_catalogs, &cat, &err) < 0) {
        fprintf(stderr, "guestabi-blk: catalog: %s%s%s\n", err.where, err.where[0] ? ": " : "",
                err.message);
        return 1;
    }
    if (a.list) {
        devmain_list_modes(&dm, cat);
        return 0;
    }
    if (devmain_pick_mode(&dm, cat, a.mode, &mode) < 0)
        return 1;
    r = a.disk ? blk_disk_open_file(&disk, a.disk, a.size, a.readonly, why, sizeof(why))
               : blk_disk_open_ram(&disk, a.ram, why, sizeof(why));
    if (r < 0) {
        fprintf(stderr, "guestabi-blk: %s\n", why);
        return 1;
    }
    disk.readonly = a.readonly;

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    opts = (struct blk_options){.socket = a.socket, .mode = &mode, .serial = a.serial};
    if (state_rule(cat)) {
        opts.state_version = rule_writes(state_rule(cat));
        opts.state_accept = state_accept;
        opts.state_userdata = (void *)state_rule(cat);
    }
    /* blk_init takes the disk whether it succeeds or not; blk_fini releases both */
    r = blk_init(&k, &disk, &opts, &err);
    if (r < 0)
        fprintf(stderr, "guestabi-blk: %s%s%s\n", err.where, err.where[0] ? ": " : "", err.message);
    else
        r = serve(&k, &a, &mode, &mask);
    blk_fini(&k);
    return r < 0 ? 1 : 0;
}
