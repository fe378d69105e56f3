/* SPDX-License-Identifier: MIT */
/* Names of classes, feature bits, protocol features and kernel capabilities. */

#include <errno.h>

#include <guestabi/features.h>

#include "tap.h"

TEST(feature_lookup_by_class)
{
    unsigned bit = 0;

    CHECK_INT(gabi_feature_from_name(GABI_CLASS_NET, "VIRTIO_NET_F_HOST_USO", &bit), 0);
    CHECK_INT(bit, 56);
    CHECK_INT(gabi_feature_from_name(GABI_CLASS_BLK, "VIRTIO_BLK_F_RO", &bit), 0);
    CHECK_INT(bit, 5);
    /* bit 5 means different things per class */
    CHECK_STR(gabi_feature_name(GABI_CLASS_NET, 5), "VIRTIO_NET_F_MAC");
    CHECK_STR(gabi_feature_name(GABI_CLASS_BLK, 5), "VIRTIO_BLK_F_RO");
    /* transport bits belong to every class */
    CHECK_INT(gabi_feature_from_name(GABI_CLASS_BLK, "VIRTIO_F_VERSION_1", &bit), 0);
    CHECK_INT(bit, 32);
    CHECK_STR(gabi_feature_name(GABI_CLASS_NET, 30), "VHOST_USER_F_PROTOCOL_FEATURES");
    CHECK(gabi_feature_name(GABI_CLASS_NET, 4) == NULL);
}

TEST(feature_of_other_class_is_exdev)
{
    unsigned bit = 99;

    CHECK_INT(gabi_feature_from_name(GABI_CLASS_NET, "VIRTIO_BLK_F_FLUSH", &bit), -EXDEV);
    CHECK_INT(gabi_feature_from_name(GABI_CLASS_NET, "VIRTIO_NET_F_NOPE", &bit), -ENOENT);
    CHECK_INT(bit, 99);
}

static void count(const char *name, unsigned bit, void *userdata)
{
    unsigned got = 0;

    (void)bit;
    if (gabi_feature_from_name(GABI_CLASS_NET, name, &got) == 0 && got == bit)
        (*(int *)userdata)++;
}

TEST(every_net_name_round_trips)
{
    int n = 0;

    gabi_feature_foreach(GABI_CLASS_NET, count, &n);
    CHECK_INT(n, 16 + 35);
}

TEST(protocol_features)
{
    unsigned bit = 0;

    CHECK_INT(gabi_protocol_feature_from_name("VHOST_USER_PROTOCOL_F_DEVICE_STATE", &bit), 0);
    CHECK_INT(bit, 19);
    CHECK_STR(gabi_protocol_feature_name(15), "VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS");
    CHECK(gabi_protocol_feature_name(40) == NULL);
    CHECK_INT(gabi_protocol_feature_from_name("MQ", &bit), -ENOENT);
}

TEST(kernel_capabilities)
{
    CHECK_INT(gabi_kcap_from_name("tap.uso4"), GABI_KCAP_TAP_USO4);
    CHECK_INT(gabi_kcap_tun_flag(GABI_KCAP_TAP_USO4), 0x20);
    CHECK_INT(gabi_kcap_tun_flag(GABI_KCAP_TAP_USO6), 0x40);
    CHECK_INT(gabi_kcap_tun_flag(GABI_KCAP_TAP_UFO), 0x10);
    CHECK_INT(gabi_kcap_from_name("tap.uso"), -ENOENT);
    for (unsigned k = 0; k < GABI_KCAP_COUNT; k++)
        CHECK_INT(gabi_kcap_from_name(gabi_kcap_name(k)), k);
}

TEST(uso_features_need_uso_taps)
{
    uint32_t host_uso = gabi_kcap_needed_by_net_feature(GABI_NET_F_HOST_USO);

    CHECK(host_uso & (1u << GABI_KCAP_TAP_USO4));
    CHECK(host_uso & (1u << GABI_KCAP_TAP_USO6));
    CHECK(gabi_kcap_needed_by_net_feature(GABI_NET_F_GUEST_USO4) & (1u << GABI_KCAP_TAP_USO4));
    CHECK(gabi_kcap_needed_by_net_feature(GABI_NET_F_HOST_UFO) & (1u << GABI_KCAP_TAP_UFO));
    CHECK_INT(gabi_kcap_needed_by_net_feature(GABI_NET_F_MRG_RXBUF), 0);
}

TEST(suggestions_name_the_nearest)
{
    struct gabi_suggest s;
    char buf[256];

    gabi_suggest_init(&s, "VIRTIO_NET_F_HOST_US0");
    gabi_suggest_add(&s, "VIRTIO_NET_F_HOST_USO");
    gabi_suggest_add(&s, "VIRTIO_NET_F_HOST_UFO");
    gabi_suggest_add(&s, "VIRTIO_BLK_F_FLUSH");
    gabi_suggest_format(&s, buf, sizeof(buf));
    CHECK_STR(buf, "; did you mean VIRTIO_NET_F_HOST_USO or VIRTIO_NET_F_HOST_UFO?");

    gabi_suggest_init(&s, "zzzzzz");
    gabi_suggest_add(&s, "VIRTIO_NET_F_HOST_USO");
    CHECK_STR(gabi_suggest_format(&s, buf, sizeof(buf)), "");
}

TEST(class_names)
{
    CHECK_INT(gabi_class_from_name("virtio-net"), GABI_CLASS_NET);
    CHECK_INT(gabi_class_from_name("mdev"), GABI_CLASS_MDEV);
    CHECK_INT(gabi_class_from_name("virtio-nte"), -ENOENT);
    CHECK(gabi_class_is_virtio(GABI_CLASS_BLK));
    CHECK(!gabi_class_is_virtio(GABI_CLASS_MDEV));
}

TAP_MAIN()
