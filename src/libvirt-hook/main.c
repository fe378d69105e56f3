/* SPDX-License-Identifier: MIT */
/*
 * guestabi-libvirt-hook: libvirt's qemu hook (installed in /etc/libvirt/hooks/qemu.d/), called
 * as `hook DOMAIN OPERATION SUB-OPERATION EXTRA` with the domain XML on stdin.
 *
 *   migrate begin   (destination, before anything exists there) the domain's pin is checked
 *                   against this host by the agent (abi.check): accepted silently, or refused
 *                   with exit 1 and every reason in one paragraph on stderr, which libvirt
 *                   shows as the migration's error.
 *   prepare begin   (any start, fresh or incoming) the agent creates a port for each pinned
 *                   vhost-user interface or disk, at the domain's socket path, in the pinned
 *                   mode; the socket is handed to QEMU's user. A port that cannot be created
 *                   refuses the start.
 *   release end     the ports created at prepare are deleted.
 *
 * Failover pairs (failover.c, docs/failover.md): at migrate begin each transient failover
 * interface (<interface type='hostdev'> with <teaming type='transient'/>) gets a VF of this host
 * reserved through the agent, and the domain XML is printed on stdout with its source address
 * rewritten (libvirt takes it as the domain's new XML); no such VF refuses the migration. At
 * prepare the VFs are bound to vfio-pci; at release they are released.
 *
 * A domain without a pin is left alone (exit 0, no output). A pinned domain whose agent cannot
 * be reached, or does not answer in time, is refused with that reason (fail closed). Nothing
 * else is ever printed on stdout: at migrate begin libvirt would take it as a rewritten domain
 * XML.
 *
 * Configuration: /etc/guestabi/guestabi.conf (or $GUESTABI_CONF), `key = value` lines:
 *   agent_socket  the agent's socket (default /run/guestabi/guestabid.sock; $GUESTABI_AGENT
 *                 overrides it)
 *   timeout_ms    bound on each invocation's talk with the agent (default 10000)
 *   qemu_user, qemu_group   who QEMU runs as (default libvirt-qemu and that user's group)
 *   net_backing   a virtio-net port's backing: loopback, or tap:NAME ({id} and {domain} are
 *                 replaced by the pin device's id and the domain's name) (default loopback)
 *   blk_backing   a virtio-blk port's backing: ram:BYTES or disk:PATH (same replacements)
 *                 (default ram:67108864)
 * Unknown keys are left to other guestabi programs reading the same file.
 */

#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestabi/libvirt.h>

#include <guestabi/rpc_client.h>

#include "failover.h"
#include <guestabi/util.h>

#define CONF_PATH      "/etc/guestabi/guestabi.conf"
#define AGENT_DEFAULT  "/run/guestabi/guestabid.sock"
#define MAX_STDIN      GABI_LIBVIRT_MAX_XML
#define CONF_MAX       (64u << 10)
#define VALUE_MAX      512u
#define HOOK_MAX_REPLY (4u << 20) /* bytes of one agent reply: a verdict or a port */

struct conf {
    char agent_socket[VALUE_MAX];
    unsigned timeout_ms;
    char qemu_user[VALUE_MAX], qemu_group[VALUE_MAX];
    char net_backing[VALUE_MAX], blk_backing[VALUE_MAX];
};

struct hook {
    const char *domain, *op, *subop;
    struct conf conf;
    struct gabi_catalog *cat;
    struct gabi_domain *dom;
    uint64_t start_ms, deadline_ms;
    const char *xml; /* as libvirt gave it */
    size_t size;
};

/* What libvirt shows the user: one paragraph. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("guestabi: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
        *--e = '\0';
    return s;
}

static int conf_load(struct conf *c, struct gabi_error *reterr)
{
    const char *path = getenv("GUESTABI_CONF") ? getenv("GUESTABI_CONF") : CONF_PATH;
    const char *env = getenv("GUESTABI_AGENT");
    _cleanup_free_ char *buf = NULL;
    size_t size;
    unsigned lineno = 0;
    int r;

    snprintf(c->agent_socket, sizeof(c->agent_socket), "%s", AGENT_DEFAULT);
    c->timeout_ms = 10000;
    snprintf(c->qemu_user, sizeof(c->qemu_user), "libvirt-qemu");
    c->qemu_group[0] = '\0';
    snprintf(c->net_backing, sizeof(c->net_backing), "loopback");
    snprintf(c->blk_backing, sizeof(c->blk_backing), "ram:67108864");
    r = gabi_read_file(path, CONF_MAX, &buf, &size);
    if (r == -ENOENT)
        r = 0;
    else if (r < 0)
        return gabi_error_set(reterr, r, path, "cannot read: %s", strerror(-r));
    for (char *save = NULL, *line = buf ? strtok_r(buf, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq, *key, *val, where[GABI_ERROR_WHERE_MAX];

        lineno++;
        line = trim(line);
        if (!line[0] || line[0] == '#')
            continue;
        snprintf(where, sizeof(where), "%s:%u", path, lineno);
        eq = strchr(line, '=');
        if (!eq)
            return gabi_error_set(reterr, -EINVAL, where, "expected key = value");
        *eq = '\0';
        key = trim(line);
        val = trim(eq + 1);
        if (strlen(val) >= VALUE_MAX)
            return gabi_error_set(reterr, -EINVAL, where, "%s: value longer than %u bytes", key,
                                  VALUE_MAX - 1);
        if (strcmp(key, "agent_socket") == 0) {
            snprintf(c->agent_socket, sizeof(c->agent_socket), "%s", val);
        } else if (strcmp(key, "timeout_ms") == 0) {
            uint64_t v;

            if (gabi_parse_u64(val, &v) < 0 || v < 100 || v > 600000)
                return gabi_error_set(reterr, -EINVAL, where,
                                      "timeout_ms must be 100 to 600000, not \"%s\"", val);
            c->timeout_ms = (unsigned)v;
        } else if (strcmp(key, "qemu_user") == 0) {
            snprintf(c->qemu_user, sizeof(c->qemu_user), "%s", val);
        } else if (strcmp(key, "qemu_group") == 0) {
            snprintf(c->qemu_group, sizeof(c->qemu_group), "%s", val);
        } else if (strcmp(key, "net_backing") == 0) {
            snprintf(c->net_backing, sizeof(c->net_backing), "%s", val);
        } else if (strcmp(key, "blk_backing") == 0) {
            snprintf(c->blk_backing, sizeof(c->blk_backing), "%s", val);
        }
    }
    if (env && env[0])
        snprintf(c->agent_socket, sizeof(c->agent_socket), "%s", env);
    return 0;
}

/* The whole of stdin, bounded. */
static int read_stdin(char **ret, size_t *ret_size)
{
    size_t cap = 64 << 10, len = 0;
    char *buf = malloc(cap + 1);

    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t k;

        if (len == cap) {
            char *nb;

            if (cap >= MAX_STDIN) {
                free(buf);
                return -EFBIG;
            }
            cap = MIN(cap * 2, (size_t)MAX_STDIN);
            nb = realloc(buf, cap + 1);
            if (!nb) {
                free(buf);
                return -ENOMEM;
            }
            buf = nb;
        }
        k = read(STDIN_FILENO, buf + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            free(buf);
            return -errno;
        }
        if (k == 0)
            break;
        len += (size_t)k;
    }
    buf[len] = '\0';
    *ret = buf;
    *ret_size = len;
    return 0;
}

/* "lv-<uuid>-<id>": the port of pin device `id`, the same at prepare and at release. */
static void port_id(const struct hook *h, const char *dev, char *buf, size_t size)
{
    const char *u = gabi_domain_uuid(h->dom) ? gabi_domain_uuid(h->dom) : gabi_domain_name(h->dom);
    size_t n;

    snprintf(buf, size, "lv-%s-%s", u, dev);
    for (n = 0; buf[n]; n++)
        if (!((buf[n] >= 'a' && buf[n] <= 'z') || (buf[n] >= 'A' && buf[n] <= 'Z') ||
              (buf[n] >= '0' && buf[n] <= '9') || buf[n] == '.' || buf[n] == '_' || buf[n] == '-'))
            buf[n] = '_';
    if (n > 64)
        buf[64] = '\0';
}

static int open_agent(struct hook *h, struct gabi_rpc_client *c, struct gabi_error *reterr)
{
    return gabi_rpc_client_open(c, h->conf.agent_socket, h->deadline_ms, HOOK_MAX_REPLY, reterr);
}

/* ---- failover pairs ------------------------------------------------------------------------ */

/* Whether the domain may have a transient failover interface (failover.c decides). */
static bool has_failover(const struct hook *h)
{
    return memmem(h->xml, h->size, "transient", 9) != NULL;
}

enum failover_step { FAILOVER_BEGIN, FAILOVER_BIND, FAILOVER_RELEASE };

/* One failover step through the agent for this VM (its VFs are held as "lv-<uuid>-vfs");
 * FAILOVER_BEGIN also fills *ret_xml. 0 (or what the step returns), or < 0 with err. */
static int failover_step(struct hook *h, enum failover_step step, char **ret_xml,
                         struct gabi_error *err)
{
    struct gabi_rpc_client c = {.fd = -1};
    char vm[80];
    int r;

    port_id(h, "vfs", vm, sizeof(vm));
    r = open_agent(h, &c, err);
    if (r == 0 && step == FAILOVER_BEGIN)
        r = hook_failover_begin(&c, h->dom, vm, h->xml, h->size, ret_xml, err);
    else if (r == 0 && step == FAILOVER_BIND)
        r = hook_failover_bind(&c, vm, err);
    else if (r == 0)
        r = hook_failover_release(&c, vm, err);
    gabi_rpc_client_close(&c);
    return r;
}

/* migrate begin, once the pin is accepted: a VF per transient interface, the XML rewritten. */
static int failover_begin(struct hook *h)
{
    struct gabi_error err = {0};
    char *out = NULL;
    int r;

    if (!has_failover(h))
        return 0;
    if (failover_step(h, FAILOVER_BEGIN, &out, &err) < 0) {
        say("VM %s: no failover primary for it on this host: %s%s%s. Refused before anything "
            "was created on this host.",
            h->domain, err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.message);
        return 1;
    }
    if (out) {
        /* libvirt takes the hook's stdout as the domain's new XML */
        r = fputs(out, stdout) < 0 || fputc('\n', stdout) < 0 || fflush(stdout) != 0;
        free(out);
        if (r) {
            say("VM %s: cannot write the rewritten domain XML: %s", h->domain, strerror(errno));
            return 1;
        }
    }
    return 0;
}

/* prepare: the reserved VFs onto vfio-pci before QEMU starts. */
static int failover_prepare(struct hook *h)
{
    struct gabi_error err = {0};

    if (has_failover(h) && failover_step(h, FAILOVER_BIND, NULL, &err) < 0) {
        say("VM %s: its failover primary cannot be bound to vfio-pci on this host: %s%s%s; "
            "refusing the start.",
            h->domain, err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.message);
        return 1;
    }
    return 0;
}

/* release: the VM is gone from this host (it stopped, it left, or it never started). */
static void failover_release(struct hook *h)
{
    struct gabi_error err = {0};

    if (has_failover(h) && failover_step(h, FAILOVER_RELEASE, NULL, &err) < 0)
        say("VM %s: cannot release its failover VFs (%s%s%s); they expire or stay bound", h->domain,
            err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.message);
}

/* ---- migrate begin ---------------------------------------------------------------------- */

static int on_migrate_begin(struct hook *h)
{
    struct gabi_rpc_client c = {.fd = -1};
    struct gabi_error err = {0};
    json_t *pin, *verdict = NULL, *reasons, *r;
    char *text = gabi_pin_to_json(gabi_domain_pin(h->dom));
    const char *host;
    size_t i;

    pin = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!pin) {
        say("cannot build the pin of VM %s: out of memory; refusing the migration", h->domain);
        return 1;
    }
    if (open_agent(h, &c, &err) < 0)
        json_decref(pin); /* not handed to the call below */
    if (c.fd < 0 || gabi_rpc_client_call(&c, "abi.check", json_pack("{s:o}", "pin", pin), &verdict,
                                         NULL, NULL, &err) < 0) {
        gabi_rpc_client_close(&c);
        say("VM %s is pinned, but this host's guestabi agent could not check its pin (%s%s%s); "
            "refusing the migration, since a pinned VM goes only where its pin was checked.",
            h->domain, err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.message);
        return 1;
    }
    gabi_rpc_client_close(&c);
    if (json_is_true(json_object_get(verdict, "ok"))) {
        json_decref(verdict);
        return failover_begin(h);
    }
    host = json_string_value(json_object_get(verdict, "host"));
    reasons = json_object_get(verdict, "reasons");
    fprintf(stderr, "guestabi: host %s cannot run VM %s as pinned (%zu reason%s): ",
            host ? host : "(this host)", h->domain, json_array_size(reasons),
            json_array_size(reasons) == 1 ? "" : "s");
    json_array_foreach (reasons, i, r) {
        const char *dev = json_string_value(json_object_get(r, "device"));
        const char *key = json_string_value(json_object_get(r, "key"));
        const char *msg = json_string_value(json_object_get(r, "message"));

        fprintf(stderr, "%s[%s%s%s] %s", i ? "; " : "", dev && dev[0] ? dev : "",
                dev && dev[0] ? " " : "", key ? key : "", msg ? msg : "(no message)");
    }
    if (!json_array_size(reasons))
        fprintf(stderr, "the agent gave no reason");
    fprintf(stderr, ". Refused before anything was created on this host.\n");
    json_decref(verdict);
    return 1;
}

/* ---- prepare begin / release end ---------------------------------------------------------- */

/* `tmpl` with {id} and {domain} replaced. */
static void expand(const char *tmpl, const char *id, const char *domain, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (const char *p = tmpl; *p && n + 1 < size;) {
        const char *rep = NULL;
        size_t skip = 1;

        if (strncmp(p, "{id}", 4) == 0)
            rep = id, skip = 4;
        else if (strncmp(p, "{domain}", 8) == 0)
            rep = domain, skip = 8;
        if (rep) {
            n += (size_t)snprintf(buf + n, size - n, "%s", rep);
            if (n >= size)
                n = size - 1;
        } else {
            buf[n++] = *p;
            buf[n] = '\0';
        }
        p += skip;
    }
}

static json_t *backing(const struct hook *h, enum gabi_device_class cls, const char *id,
                       struct gabi_error *reterr)
{
    const char *tmpl = cls == GABI_CLASS_NET ? h->conf.net_backing : h->conf.blk_backing;
    char v[VALUE_MAX * 2];
    uint64_t bytes;

    expand(tmpl, id, gabi_domain_name(h->dom), v, sizeof(v));
    if (cls == GABI_CLASS_NET && strcmp(v, "loopback") == 0)
        return json_pack("{s:b}", "loopback", 1);
    if (cls == GABI_CLASS_NET && strncmp(v, "tap:", 4) == 0 && v[4])
        return json_pack("{s:s}", "tap", v + 4);
    if (cls == GABI_CLASS_BLK && strncmp(v, "disk:", 5) == 0 && v[5])
        return json_pack("{s:s}", "disk", v + 5);
    if (cls == GABI_CLASS_BLK && strncmp(v, "ram:", 4) == 0 && gabi_parse_u64(v + 4, &bytes) == 0)
        return json_pack("{s:I}", "ram", (json_int_t)bytes);
    gabi_error_set(reterr, -EINVAL, NULL, "%s_backing \"%s\" is not %s",
                   cls == GABI_CLASS_NET ? "net" : "blk", v,
                   cls == GABI_CLASS_NET ? "loopback or tap:NAME" : "ram:BYTES or disk:PATH");
    return NULL;
}

/* Who may connect to the port's socket: QEMU (qemu_user, and qemu_group or that user's own
 * group), mode 0660. The agent applies it each time the port's back-end listens, a restarted
 * one included. */
static json_t *socket_access(const struct hook *h, struct gabi_error *reterr)
{
    struct passwd *pw = getpwnam(h->conf.qemu_user);
    const char *group = h->conf.qemu_group;
    struct group *gr;

    if (!pw) {
        gabi_error_set(reterr, -ENOENT, NULL,
                       "user %s (qemu_user, who QEMU runs as) does not exist", h->conf.qemu_user);
        return NULL;
    }
    if (!group[0]) {
        gr = getgrgid(pw->pw_gid);
        if (!gr) {
            gabi_error_set(reterr, -ENOENT, NULL, "user %s's group %u does not exist",
                           h->conf.qemu_user, (unsigned)pw->pw_gid);
            return NULL;
        }
        group = gr->gr_name;
    }
    return json_pack("{s:s, s:s, s:s}", "user", h->conf.qemu_user, "group", group, "mode", "0660");
}

static void del_port(struct gabi_rpc_client *c, const char *id, bool quiet_if_missing)
{
    struct gabi_error err = {0};
    json_t *res = NULL;
    int code = 0;

    if (gabi_rpc_client_call(c, "port.del", json_pack("{s:s}", "id", id), &res, &code, NULL, &err) <
        0) {
        if (!(quiet_if_missing && code == -32000))
            say("port %s: port.del failed: %s", id, err.message);
    }
    json_decref(res);
}

static int on_prepare(struct hook *h)
{
    const struct gabi_pin *pin = gabi_domain_pin(h->dom);
    struct gabi_rpc_client c = {.fd = -1};
    struct gabi_error err = {0};
    char made[GABI_MAX_PIN_DEVICES][80];
    size_t n_made = 0, n_want = 0;

    if (failover_prepare(h) != 0)
        return 1;
    for (size_t i = 0; i < gabi_pin_n_devices(pin); i++)
        n_want += gabi_domain_pin_target(h->dom, i) && gabi_domain_pin_target(h->dom, i)->socket;
    if (!n_want)
        return 0;
    if (open_agent(h, &c, &err) < 0) {
        say("VM %s is pinned, but this host's guestabi agent cannot create its ports (%s: %s); "
            "refusing the start.",
            h->domain, err.where, err.message);
        return 1;
    }
    for (size_t i = 0; i < gabi_pin_n_devices(pin); i++) {
        const struct gabi_pin_device *pd = gabi_pin_device(pin, i);
        const struct gabi_domain_device *t = gabi_domain_pin_target(h->dom, i);
        json_t *params, *b, *access, *res = NULL;
        char id[80];
        int code = 0, r;

        if (!t || !t->socket)
            continue;
        port_id(h, pd->id, id, sizeof(id));
        b = backing(h, pd->cls, pd->id, &err);
        if (!b)
            goto fail;
        access = socket_access(h, &err);
        if (!access) {
            json_decref(b);
            goto fail;
        }
        params =
            json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "class", gabi_class_name(pd->cls),
                      "socket", t->socket, "mode", pd->mode->name, "backing", b, "access", access);
        r = gabi_rpc_client_call(&c, "port.add", json_incref(params), &res, &code, NULL, &err);
        if (r < 0 && code == -32001) {
            /* left over from an earlier start of this domain (QEMU is not running: this is
             * prepare): replace it */
            del_port(&c, id, true);
            r = gabi_rpc_client_call(&c, "port.add", json_incref(params), &res, &code, NULL, &err);
        }
        json_decref(params);
        json_decref(res);
        if (r < 0) {
            snprintf(err.message + strlen(err.message), sizeof(err.message) - strlen(err.message),
                     " (port.add of %s at %s in mode %s)", pd->id, t->socket, pd->mode->name);
            goto fail;
        }
        snprintf(made[n_made++], sizeof(made[0]), "%s", id);
    }
    gabi_rpc_client_close(&c);
    return 0;
fail:
    say("VM %s: cannot create its pinned ports on this host: %s%s%s; refusing the start.",
        h->domain, err.where[0] ? err.where : "", err.where[0] ? ": " : "", err.message);
    for (size_t k = 0; k < n_made; k++)
        del_port(&c, made[k], true);
    gabi_rpc_client_close(&c);
    return 1;
}

static int on_release(struct hook *h)
{
    const struct gabi_pin *pin = gabi_domain_pin(h->dom);
    struct gabi_rpc_client c = {.fd = -1};
    struct gabi_error err = {0};
    bool opened = false;

    failover_release(h);
    for (size_t i = 0; i < gabi_pin_n_devices(pin); i++) {
        const struct gabi_domain_device *t = gabi_domain_pin_target(h->dom, i);
        char id[80];

        if (!t || !t->socket)
            continue;
        if (!opened) {
            if (open_agent(h, &c, &err) < 0) {
                say("VM %s: cannot delete its ports (%s: %s)", h->domain, err.where, err.message);
                return 0; /* the domain is gone either way */
            }
            opened = true;
        }
        port_id(h, gabi_pin_device(pin, i)->id, id, sizeof(id));
        del_port(&c, id, true);
    }
    gabi_rpc_client_close(&c);
    return 0;
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct hook h = {0};
    struct gabi_error err = {0};
    char *xml = NULL;
    size_t size = 0;
    bool migrate, prepare, release;
    int r, ret = 0;

    if (argc < 4) {
        fprintf(stderr,
                "usage: %s DOMAIN OPERATION SUB-OPERATION [EXTRA] < DOMAIN.xml\n"
                "(libvirt's qemu hook: install it in /etc/libvirt/hooks/qemu.d/)\n",
                argv[0]);
        return 2;
    }
    h.domain = argv[1];
    h.op = argv[2];
    h.subop = argv[3];
    h.start_ms = gabi_rpc_now_ms();
    migrate = strcmp(h.op, "migrate") == 0 && strcmp(h.subop, "begin") == 0;
    prepare = strcmp(h.op, "prepare") == 0 && strcmp(h.subop, "begin") == 0;
    release = strcmp(h.op, "release") == 0 && strcmp(h.subop, "end") == 0;
    /* libvirt writes the XML for every operation: read it all, even when it is not needed */
    r = read_stdin(&xml, &size);
    if (!migrate && !prepare && !release) {
        free(xml);
        return 0;
    }
    if (r < 0) {
        say("VM %s: cannot read the domain XML on stdin: %s", h.domain,
            r == -EFBIG ? "larger than 4 MiB" : strerror(-r));
        return release ? 0 : 1;
    }
    /* a domain that does not mention guestabi is left alone, before any other work */
    if (!memmem(xml, size, "urn:guestabi:", 13))
        goto out;
    if (gabi_catalog_load_default(NULL, 0, &h.cat, &err) < 0 ||
        gabi_domain_parse(h.cat, h.domain, xml, size, &h.dom, &err) < 0) {
        say("VM %s: %s%s%s; refusing it.", h.domain, err.where[0] ? err.where : "",
            err.where[0] ? ": " : "", err.message);
        ret = release ? 0 : 1;
        goto out;
    }
    if (!gabi_domain_pin(h.dom))
        goto out;
    if (conf_load(&h.conf, &err) < 0) {
        say("VM %s is pinned, but the hook's configuration is invalid (%s: %s); refusing it.",
            h.domain, err.where, err.message);
        ret = release ? 0 : 1;
        goto out;
    }
    h.deadline_ms = h.start_ms + h.conf.timeout_ms;
    h.xml = xml;
    h.size = size;
    ret = migrate ? on_migrate_begin(&h) : prepare ? on_prepare(&h) : on_release(&h);
out:
    gabi_domain_free(h.dom);
    gabi_catalog_free(h.cat);
    free(xml);
    return ret;
}
