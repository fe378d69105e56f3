/* SPDX-License-Identifier: MIT */
/*
 * Framing over an AF_UNIX stream socket: a message is a 12-byte header plus payload, sent in
 * one sendmsg with its fds as SCM_RIGHTS; fds are received with MSG_CMSG_CLOEXEC.
 */

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "vhost/internal.h"

void vhost_close_fds(int *fds, unsigned *n_fds)
{
    for (unsigned i = 0; i < *n_fds; i++)
        close_and_clear(&fds[i]);
    *n_fds = 0;
}

void vhost_msg_put_fds(struct msghdr *mh, union vhost_cmsg_buf *buf, const int *fds, unsigned n_fds)
{
    struct cmsghdr *cm;

    memset(buf, 0, sizeof(*buf));
    mh->msg_control = buf->buf;
    mh->msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
    cm = CMSG_FIRSTHDR(mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
    memcpy(CMSG_DATA(cm), fds, sizeof(int) * n_fds);
}

int vhost_send(int fd, const struct vhost_user_hdr *hdr, const void *payload, const int *fds,
               unsigned n_fds, int timeout_ms)
{
    union vhost_cmsg_buf control;
    struct iovec iov[2] = {
        {.iov_base = (void *)hdr, .iov_len = sizeof(*hdr)},
        {.iov_base = (void *)payload, .iov_len = payload ? hdr->size : 0},
    };
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    size_t left = iov[0].iov_len + iov[1].iov_len;

    if (n_fds > GABI_VHOST_MAX_FDS)
        return -EINVAL;
    if (n_fds)
        vhost_msg_put_fds(&mh, &control, fds, n_fds);
    while (left > 0) {
        ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int r;

            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            r = poll(&p, 1, timeout_ms);
            if (r == 0)
                return -ETIMEDOUT;
            if (r < 0 && errno != EINTR)
                return -errno;
            continue;
        }
        /* the fds went with the first byte */
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        left -= (size_t)n;
        while (n > 0 && mh.msg_iovlen > 0) {
            size_t take = MIN((size_t)n, mh.msg_iov->iov_len);

            mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + take;
            mh.msg_iov->iov_len -= take;
            n -= (ssize_t)take;
            if (mh.msg_iov->iov_len == 0) {
                mh.msg_iov++;
                mh.msg_iovlen--;
            }
        }
    }
    return 0;
}

ssize_t vhost_recv(int fd, void *buf, size_t size, int *fds, unsigned *n_fds, unsigned max)
{
    union vhost_cmsg_buf control;
    struct iovec iov = {.iov_base = buf, .iov_len = size};
    struct msghdr mh = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    bool too_many = false;
    ssize_t n;

    do {
        n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
        size_t k;
        int got[GABI_VHOST_MAX_FDS + 1];

        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
            continue;
        k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (k > ARRAY_SIZE(got))
            k = ARRAY_SIZE(got); /* cannot happen: the control buffer holds fewer */
        memcpy(got, CMSG_DATA(cm), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (*n_fds < max) {
                fds[(*n_fds)++] = got[i];
            } else {
                close(got[i]);
                too_many = true;
            }
        }
    }
    if (mh.msg_flags & MSG_CTRUNC)
        too_many = true;
    if (too_many)
        return -EMSGSIZE;
    return n;
}
