/* SPDX-License-Identifier: MIT */
#include <guestabi/features.h>

#include <stdio.h>
#include <string.h>

#include <guestabi/util.h>

/* ---- device classes ------------------------------------------------------------------- */

static const char *const class_names[GABI_CLASS_COUNT] = {
    [GABI_CLASS_NONE] = "none",
    [GABI_CLASS_NET] = "virtio-net",
    [GABI_CLASS_BLK] = "virtio-blk",
    [GABI_CLASS_MDEV] = "mdev",
};

const char *gabi_class_name(enum gabi_device_class cls)
{
    if ((unsigned)cls >= GABI_CLASS_COUNT)
        return "?";
    return class_names[cls];
}

int gabi_class_from_name(const char *name)
{
    for (unsigned i = 1; i < GABI_CLASS_COUNT; i++)
        if (strcmp(class_names[i], name) == 0)
            return (int)i;
    return -ENOENT;
}

int gabi_class_is_virtio(enum gabi_device_class cls)
{
    return cls == GABI_CLASS_NET || cls == GABI_CLASS_BLK;
}

/* ---- virtio feature bits, by class ------------------------------------------------------ */

struct feature_name {
    enum gabi_device_class cls; /* GABI_CLASS_NONE: transport bit, valid for every class */
    unsigned bit;
    const char *name;
};

/* Spec names (virtio 1.2/1.3, Linux uapi), transport first. */
static const struct feature_name features[] = {
    {GABI_CLASS_NONE, 24, "VIRTIO_F_NOTIFY_ON_EMPTY"},
    {GABI_CLASS_NONE, 26, "VHOST_F_LOG_ALL"},
    {GABI_CLASS_NONE, 27, "VIRTIO_F_ANY_LAYOUT"},
    {GABI_CLASS_NONE, 28, "VIRTIO_RING_F_INDIRECT_DESC"},
    {GABI_CLASS_NONE, 29, "VIRTIO_RING_F_EVENT_IDX"},
    {GABI_CLASS_NONE, 30, "VHOST_USER_F_PROTOCOL_FEATURES"},
    {GABI_CLASS_NONE, 32, "VIRTIO_F_VERSION_1"},
    {GABI_CLASS_NONE, 33, "VIRTIO_F_ACCESS_PLATFORM"},
    {GABI_CLASS_NONE, 34, "VIRTIO_F_RING_PACKED"},
    {GABI_CLASS_NONE, 35, "VIRTIO_F_IN_ORDER"},
    {GABI_CLASS_NONE, 36, "VIRTIO_F_ORDER_PLATFORM"},
    {GABI_CLASS_NONE, 37, "VIRTIO_F_SR_IOV"},
    {GABI_CLASS_NONE, 38, "VIRTIO_F_NOTIFICATION_DATA"},
    {GABI_CLASS_NONE, 39, "VIRTIO_F_NOTIF_CONFIG_DATA"},
    {GABI_CLASS_NONE, 40, "VIRTIO_F_RING_RESET"},
    {GABI_CLASS_NONE, 41, "VIRTIO_F_ADMIN_VQ"},

    {GABI_CLASS_NET, 0, "VIRTIO_NET_F_CSUM"},
    {GABI_CLASS_NET, 1, "VIRTIO_NET_F_GUEST_CSUM"},
    {GABI_CLASS_NET, 2, "VIRTIO_NET_F_CTRL_GUEST_OFFLOADS"},
    {GABI_CLASS_NET, 3, "VIRTIO_NET_F_MTU"},
    {GABI_CLASS_NET, 5, "VIRTIO_NET_F_MAC"},
    {GABI_CLASS_NET, 6, "VIRTIO_NET_F_GSO"},
    {GABI_CLASS_NET, 7, "VIRTIO_NET_F_GUEST_TSO4"},
    {GABI_CLASS_NET, 8, "VIRTIO_NET_F_GUEST_TSO6"},
    {GABI_CLASS_NET, 9, "VIRTIO_NET_F_GUEST_ECN"},
    {GABI_CLASS_NET, 10, "VIRTIO_NET_F_GUEST_UFO"},
    {GABI_CLASS_NET, 11, "VIRTIO_NET_F_HOST_TSO4"},
    {GABI_CLASS_NET, 12, "VIRTIO_NET_F_HOST_TSO6"},
    {GABI_CLASS_NET, 13, "VIRTIO_NET_F_HOST_ECN"},
    {GABI_CLASS_NET, 14, "VIRTIO_NET_F_HOST_UFO"},
    {GABI_CLASS_NET, 15, "VIRTIO_NET_F_MRG_RXBUF"},
    {GABI_CLASS_NET, 16, "VIRTIO_NET_F_STATUS"},
    {GABI_CLASS_NET, 17, "VIRTIO_NET_F_CTRL_VQ"},
    {GABI_CLASS_NET, 18, "VIRTIO_NET_F_CTRL_RX"},
    {GABI_CLASS_NET, 19, "VIRTIO_NET_F_CTRL_VLAN"},
    {GABI_CLASS_NET, 20, "VIRTIO_NET_F_CTRL_RX_EXTRA"},
    {GABI_CLASS_NET, 21, "VIRTIO_NET_F_GUEST_ANNOUNCE"},
    {GABI_CLASS_NET, 22, "VIRTIO_NET_F_MQ"},
    {GABI_CLASS_NET, 23, "VIRTIO_NET_F_CTRL_MAC_ADDR"},
    {GABI_CLASS_NET, 51, "VIRTIO_NET_F_HASH_TUNNEL"},
    {GABI_CLASS_NET, 52, "VIRTIO_NET_F_VQ_NOTF_COAL"},
    {GABI_CLASS_NET, 53, "VIRTIO_NET_F_NOTF_COAL"},
    {GABI_CLASS_NET, 54, "VIRTIO_NET_F_GUEST_USO4"},
    {GABI_CLASS_NET, 55, "VIRTIO_NET_F_GUEST_USO6"},
    {GABI_CLASS_NET, 56, "VIRTIO_NET_F_HOST_USO"},
    {GABI_CLASS_NET, 57, "VIRTIO_NET_F_HASH_REPORT"},
    {GABI_CLASS_NET, 59, "VIRTIO_NET_F_GUEST_HDRLEN"},
    {GABI_CLASS_NET, 60, "VIRTIO_NET_F_RSS"},
    {GABI_CLASS_NET, 61, "VIRTIO_NET_F_RSC_EXT"},
    {GABI_CLASS_NET, 62, "VIRTIO_NET_F_STANDBY"},
    {GABI_CLASS_NET, 63, "VIRTIO_NET_F_SPEED_DUPLEX"},

    {GABI_CLASS_BLK, 0, "VIRTIO_BLK_F_BARRIER"},
    {GABI_CLASS_BLK, 1, "VIRTIO_BLK_F_SIZE_MAX"},
    {GABI_CLASS_BLK, 2, "VIRTIO_BLK_F_SEG_MAX"},
    {GABI_CLASS_BLK, 4, "VIRTIO_BLK_F_GEOMETRY"},
    {GABI_CLASS_BLK, 5, "VIRTIO_BLK_F_RO"},
    {GABI_CLASS_BLK, 6, "VIRTIO_BLK_F_BLK_SIZE"},
    {GABI_CLASS_BLK, 7, "VIRTIO_BLK_F_SCSI"},
    {GABI_CLASS_BLK, 9, "VIRTIO_BLK_F_FLUSH"},
    {GABI_CLASS_BLK, 10, "VIRTIO_BLK_F_TOPOLOGY"},
    {GABI_CLASS_BLK, 11, "VIRTIO_BLK_F_CONFIG_WCE"},
    {GABI_CLASS_BLK, 12, "VIRTIO_BLK_F_MQ"},
    {GABI_CLASS_BLK, 13, "VIRTIO_BLK_F_DISCARD"},
    {GABI_CLASS_BLK, 14, "VIRTIO_BLK_F_WRITE_ZEROES"},
    {GABI_CLASS_BLK, 15, "VIRTIO_BLK_F_LIFETIME"},
    {GABI_CLASS_BLK, 16, "VIRTIO_BLK_F_SECURE_ERASE"},
    {GABI_CLASS_BLK, 17, "VIRTIO_BLK_F_ZONED"},
};

static bool feature_in_class(const struct feature_name *f, enum gabi_device_class cls)
{
    return f->cls == GABI_CLASS_NONE || f->cls == cls;
}

/* Names by class and bit, filled once from the table above: reasons name many features. */
static const char *feature_names[GABI_CLASS_COUNT][64];

__attribute__((constructor)) static void feature_names_init(void)
{
    for (unsigned cls = 0; cls < GABI_CLASS_COUNT; cls++)
        for (size_t i = 0; i < ARRAY_SIZE(features); i++)
            if (feature_in_class(&features[i], (enum gabi_device_class)cls))
                feature_names[cls][features[i].bit] = features[i].name;
}

const char *gabi_feature_name(enum gabi_device_class cls, unsigned bit)
{
    if ((unsigned)cls >= GABI_CLASS_COUNT || bit >= 64)
        return NULL;
    return feature_names[cls][bit];
}

int gabi_feature_from_name(enum gabi_device_class cls, const char *name, unsigned *ret_bit)
{
    bool other_class = false;

    for (size_t i = 0; i < ARRAY_SIZE(features); i++) {
        if (strcmp(features[i].name, name) != 0)
            continue;
        if (!feature_in_class(&features[i], cls)) {
            other_class = true;
            continue;
        }
        *ret_bit = features[i].bit;
        return 0;
    }
    return other_class ? -EXDEV : -ENOENT;
}

void gabi_feature_foreach(enum gabi_device_class cls,
                          void (*fn)(const char *name, unsigned bit, void *userdata),
                          void *userdata)
{
    for (size_t i = 0; i < ARRAY_SIZE(features); i++)
        if (feature_in_class(&features[i], cls))
            fn(features[i].name, features[i].bit, userdata);
}

/* ---- vhost-user protocol feature bits --------------------------------------------------- */

static const char *const protocol_features[GABI_PF_COUNT] = {
    [GABI_PF_MQ] = "VHOST_USER_PROTOCOL_F_MQ",
    [GABI_PF_LOG_SHMFD] = "VHOST_USER_PROTOCOL_F_LOG_SHMFD",
    [GABI_PF_RARP] = "VHOST_USER_PROTOCOL_F_RARP",
    [GABI_PF_REPLY_ACK] = "VHOST_USER_PROTOCOL_F_REPLY_ACK",
    [GABI_PF_NET_MTU] = "VHOST_USER_PROTOCOL_F_NET_MTU",
    [GABI_PF_BACKEND_REQ] = "VHOST_USER_PROTOCOL_F_BACKEND_REQ",
    [GABI_PF_CROSS_ENDIAN] = "VHOST_USER_PROTOCOL_F_CROSS_ENDIAN",
    [GABI_PF_CRYPTO_SESSION] = "VHOST_USER_PROTOCOL_F_CRYPTO_SESSION",
    [GABI_PF_PAGEFAULT] = "VHOST_USER_PROTOCOL_F_PAGEFAULT",
    [GABI_PF_CONFIG] = "VHOST_USER_PROTOCOL_F_CONFIG",
    [GABI_PF_BACKEND_SEND_FD] = "VHOST_USER_PROTOCOL_F_BACKEND_SEND_FD",
    [GABI_PF_HOST_NOTIFIER] = "VHOST_USER_PROTOCOL_F_HOST_NOTIFIER",
    [GABI_PF_INFLIGHT_SHMFD] = "VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD",
    [GABI_PF_RESET_DEVICE] = "VHOST_USER_PROTOCOL_F_RESET_DEVICE",
    [GABI_PF_INBAND_NOTIFICATIONS] = "VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS",
    [GABI_PF_CONFIGURE_MEM_SLOTS] = "VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS",
    [GABI_PF_STATUS] = "VHOST_USER_PROTOCOL_F_STATUS",
    [GABI_PF_XEN_MMAP] = "VHOST_USER_PROTOCOL_F_XEN_MMAP",
    [GABI_PF_SHARED_OBJECT] = "VHOST_USER_PROTOCOL_F_SHARED_OBJECT",
    [GABI_PF_DEVICE_STATE] = "VHOST_USER_PROTOCOL_F_DEVICE_STATE",
};

const char *gabi_protocol_feature_name(unsigned bit)
{
    return bit < GABI_PF_COUNT ? protocol_features[bit] : NULL;
}

int gabi_protocol_feature_from_name(const char *name, unsigned *ret_bit)
{
    for (unsigned i = 0; i < GABI_PF_COUNT; i++)
        if (strcmp(protocol_features[i], name) == 0) {
            *ret_bit = i;
            return 0;
        }
    return -ENOENT;
}

/* ---- host-kernel capabilities ------------------------------------------------------------ */

static const struct {
    const char *name;
    unsigned tun_flag;
} kcaps[GABI_KCAP_COUNT] = {
    [GABI_KCAP_TAP_VNET_HDR] = {"tap.vnet_hdr", 0},  [GABI_KCAP_TAP_CSUM] = {"tap.csum", 0x01},
    [GABI_KCAP_TAP_TSO4] = {"tap.tso4", 0x02},       [GABI_KCAP_TAP_TSO6] = {"tap.tso6", 0x04},
    [GABI_KCAP_TAP_TSO_ECN] = {"tap.tso_ecn", 0x08}, [GABI_KCAP_TAP_UFO] = {"tap.ufo", 0x10},
    [GABI_KCAP_TAP_USO4] = {"tap.uso4", 0x20},       [GABI_KCAP_TAP_USO6] = {"tap.uso6", 0x40},
    [GABI_KCAP_VHOST_NET] = {"vhost-net", 0},
};

const char *gabi_kcap_name(enum gabi_kcap cap)
{
    return (unsigned)cap < GABI_KCAP_COUNT ? kcaps[cap].name : "?";
}

int gabi_kcap_from_name(const char *name)
{
    for (unsigned i = 0; i < GABI_KCAP_COUNT; i++)
        if (strcmp(kcaps[i].name, name) == 0)
            return (int)i;
    return -ENOENT;
}

unsigned gabi_kcap_tun_flag(enum gabi_kcap cap)
{
    return (unsigned)cap < GABI_KCAP_COUNT ? kcaps[cap].tun_flag : 0;
}

#define KCAP(c) (1u << GABI_KCAP_TAP_##c)

/* Which tap abilities each offload feature relies on: with a tap peer QEMU offers host-side
 * offloads only with a vnet header, the guest-side ones only when TUNSETOFFLOAD accepts the
 * matching TUN_F_* flags, UFO and USO only when the kernel has them. */
static const struct {
    unsigned bit;
    uint32_t kcaps;
} net_feature_kcaps[] = {
    {GABI_NET_F_CSUM, KCAP(VNET_HDR)},
    {GABI_NET_F_GUEST_CSUM, KCAP(VNET_HDR) | KCAP(CSUM)},
    {GABI_NET_F_GUEST_TSO4, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(TSO4)},
    {GABI_NET_F_GUEST_TSO6, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(TSO6)},
    {GABI_NET_F_GUEST_ECN, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(TSO_ECN)},
    {GABI_NET_F_GUEST_UFO, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(UFO)},
    {GABI_NET_F_HOST_TSO4, KCAP(VNET_HDR)},
    {GABI_NET_F_HOST_TSO6, KCAP(VNET_HDR)},
    {GABI_NET_F_HOST_ECN, KCAP(VNET_HDR)},
    {GABI_NET_F_HOST_UFO, KCAP(VNET_HDR) | KCAP(UFO)},
    {GABI_NET_F_GUEST_USO4, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(USO4)},
    {GABI_NET_F_GUEST_USO6, KCAP(VNET_HDR) | KCAP(CSUM) | KCAP(USO6)},
    {GABI_NET_F_HOST_USO, KCAP(VNET_HDR) | KCAP(USO4) | KCAP(USO6)},
};

uint32_t gabi_kcap_needed_by_net_feature(unsigned bit)
{
    for (size_t i = 0; i < ARRAY_SIZE(net_feature_kcaps); i++)
        if (net_feature_kcaps[i].bit == bit)
            return net_feature_kcaps[i].kcaps;
    return 0;
}

/* ---- hypervisor properties ------------------------------------------------------------ */

/* QEMU's virtio-net feature properties (hw/net/virtio-net.c virtio_net_properties): the
 * classic offloads since the feature-bit properties of QEMU 0.13, USO since 8.2. */
static const struct gabi_hv_property hv_properties[] = {
    {"csum", GABI_NET_F_CSUM, "0.13"},
    {"guest_csum", GABI_NET_F_GUEST_CSUM, "0.13"},
    {"guest_tso4", GABI_NET_F_GUEST_TSO4, "0.13"},
    {"guest_tso6", GABI_NET_F_GUEST_TSO6, "0.13"},
    {"guest_ecn", GABI_NET_F_GUEST_ECN, "0.13"},
    {"guest_ufo", GABI_NET_F_GUEST_UFO, "0.13"},
    {"host_tso4", GABI_NET_F_HOST_TSO4, "0.13"},
    {"host_tso6", GABI_NET_F_HOST_TSO6, "0.13"},
    {"host_ecn", GABI_NET_F_HOST_ECN, "0.13"},
    {"host_ufo", GABI_NET_F_HOST_UFO, "0.13"},
    {"guest_uso4", GABI_NET_F_GUEST_USO4, "8.2"},
    {"guest_uso6", GABI_NET_F_GUEST_USO6, "8.2"},
    {"host_uso", GABI_NET_F_HOST_USO, "8.2"},
};

const struct gabi_hv_property *gabi_hv_properties(size_t *ret_n)
{
    *ret_n = ARRAY_SIZE(hv_properties);
    return hv_properties;
}

const struct gabi_hv_property *gabi_hv_property_for_feature(unsigned bit)
{
    for (size_t i = 0; i < ARRAY_SIZE(hv_properties); i++)
        if (hv_properties[i].bit == bit)
            return &hv_properties[i];
    return NULL;
}

const struct gabi_hv_property *gabi_hv_property_find(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(hv_properties); i++)
        if (strcmp(hv_properties[i].name, name) == 0)
            return &hv_properties[i];
    return NULL;
}

/* ---- suggestions ---------------------------------------------------------------------------- */

/* Levenshtein distance, case-insensitive, capped at 64-character inputs. */
static unsigned edit_distance(const char *a, const char *b)
{
    unsigned row[65];
    size_t la = strlen(a), lb = strlen(b);

    if (la > 64 || lb > 64)
        return 1000;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned prev = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned cur = row[j];
            unsigned ca = (unsigned char)a[i - 1], cb = (unsigned char)b[j - 1];
            unsigned cost = (ca | 0x20) == (cb | 0x20) ? 0 : 1;
            unsigned v = prev + cost;
            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            prev = cur;
        }
    }
    return row[lb];
}

void gabi_suggest_init(struct gabi_suggest *s, const char *wanted)
{
    memset(s, 0, sizeof(*s));
    s->wanted = wanted;
}

void gabi_suggest_add(struct gabi_suggest *s, const char *candidate)
{
    size_t len = strlen(s->wanted), i;
    unsigned d = edit_distance(s->wanted, candidate);
    unsigned limit = (unsigned)(len / 3 > 2 ? len / 3 : 2);

    /* A name containing the wanted one (or the other way round) counts as close too. */
    if (d > limit && len >= 3 && (strstr(candidate, s->wanted) || strstr(s->wanted, candidate)))
        d = limit;
    if (d > limit)
        return;
    for (i = 0; i < s->n_best; i++)
        if (d < s->dist[i] || (d == s->dist[i] && strcmp(candidate, s->best[i]) < 0))
            break;
    if (i >= GABI_SUGGEST_MAX)
        return;
    if (s->n_best < GABI_SUGGEST_MAX)
        s->n_best++;
    memmove(&s->best[i + 1], &s->best[i], (s->n_best - 1 - i) * sizeof(s->best[0]));
    memmove(&s->dist[i + 1], &s->dist[i], (s->n_best - 1 - i) * sizeof(s->dist[0]));
    s->best[i] = candidate;
    s->dist[i] = d;
}

const char *gabi_suggest_format(const struct gabi_suggest *s, char *buf, size_t size)
{
    size_t off;

    if (!size)
        return buf;
    buf[0] = '\0';
    if (!s->n_best)
        return buf;
    off = (size_t)snprintf(buf, size, "; did you mean ");
    for (size_t i = 0; i < s->n_best && off < size; i++) {
        const char *sep = i == 0 ? "" : (i + 1 == s->n_best ? " or " : ", ");
        off += (size_t)snprintf(buf + off, size - off, "%s%s", sep, s->best[i]);
    }
    if (off < size)
        snprintf(buf + off, size - off, "?");
    return buf;
}
