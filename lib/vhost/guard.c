/* SPDX-License-Identifier: MIT */
/*
 * Mappings of a peer's files. Guest memory regions and the dirty log come from the
 * front-end's fds, and a front-end can shrink such a file (ftruncate) after the back-end
 * mapped it, unless the file is sealed (QEMU seals its memfds with F_SEAL_SHRINK; other
 * front-ends may not). An access past the new end of the file raises SIGBUS, which would kill
 * the back-end. With the guard installed (gabi_vhost_guard_sigbus()), a SIGBUS inside such a
 * mapping puts a private zero page over the faulting page, the access completes, and the
 * mapping is marked lost; the back-end then breaks its vrings, naming the region, at its next
 * pop or message. A fault anywhere else goes to the disposition that was there before.
 */

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vhost/internal.h"

#define GUARD_SLOTS 1024

struct guard_slot {
    atomic_bool claimed;
    _Atomic uintptr_t start; /* published last; 0 while the slot is not in use */
    _Atomic size_t len;
    atomic_bool lost;
};

static struct guard_slot slots[GUARD_SLOTS];
static struct sigaction previous;
static size_t page_size = 4096;
static atomic_bool installed;
atomic_uint vhost_guard_hits;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    uintptr_t a = (uintptr_t)si->si_addr;
    int saved_errno = errno; /* the interrupted code's */

    for (unsigned i = 0; i < GUARD_SLOTS; i++) {
        uintptr_t s = atomic_load_explicit(&slots[i].start, memory_order_acquire);
        void *page;

        if (!s || a < s || a - s >= atomic_load_explicit(&slots[i].len, memory_order_relaxed))
            continue;
        page = (void *)(a & ~(uintptr_t)(page_size - 1));
        if (mmap(page, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                 -1, 0) != page)
            break;
        atomic_store(&slots[i].lost, true);
        atomic_fetch_add(&vhost_guard_hits, 1);
        errno = saved_errno;
        return;
    }
    /* Not a peer's file: what would have happened without the guard. */
    if ((previous.sa_flags & SA_SIGINFO) && previous.sa_sigaction) {
        previous.sa_sigaction(sig, si, ctx);
    } else if (!(previous.sa_flags & SA_SIGINFO) && previous.sa_handler != SIG_DFL &&
               previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
    } else {
        /* the access runs again and the default action ends the process */
        struct sigaction dfl = {.sa_handler = SIG_DFL};

        sigaction(SIGBUS, &dfl, NULL);
    }
    errno = saved_errno;
}

int gabi_vhost_guard_sigbus(struct gabi_error *reterr)
{
    struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO | SA_NODEFER};
    long ps = sysconf(_SC_PAGESIZE);

    if (atomic_exchange(&installed, true))
        return 0;
    if (ps > 0)
        page_size = (size_t)ps;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) < 0) {
        int e = errno;

        atomic_store(&installed, false);
        return gabi_error_set(reterr, -e, "SIGBUS", "cannot install the guard: %s", strerror(e));
    }
    return 0;
}

void *vhost_guard_map(int fd, size_t len, int *ret_slot)
{
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);

    *ret_slot = -1;
    if (map == MAP_FAILED)
        return map;
    for (int i = 0; i < GUARD_SLOTS; i++) {
        bool free_slot = false;

        if (!atomic_compare_exchange_strong(&slots[i].claimed, &free_slot, true))
            continue;
        atomic_store(&slots[i].lost, false);
        atomic_store_explicit(&slots[i].len, len, memory_order_relaxed);
        atomic_store_explicit(&slots[i].start, (uintptr_t)map, memory_order_release);
        *ret_slot = i;
        break;
    }
    /* No slot left: the mapping works unguarded, as it would without the guard installed. */
    return map;
}

void vhost_guard_unmap(void *map, size_t len, int slot)
{
    if (slot >= 0 && slot < GUARD_SLOTS) {
        atomic_store_explicit(&slots[slot].start, 0, memory_order_release);
        atomic_store(&slots[slot].claimed, false);
    }
    munmap(map, len);
}

bool vhost_guard_lost(int slot)
{
    return slot >= 0 && slot < GUARD_SLOTS && atomic_load(&slots[slot].lost);
}
