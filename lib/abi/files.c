/* SPDX-License-Identifier: MIT */
/*
 * The only part of lib/abi that touches the file system: reading documents and catalog
 * directories into buffers for the pure parsers, and the compiled-in default catalog.
 */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "abi/internal.h"
#include "abi/builtin_catalog.h"

/* A document from a regular file, or from standard input for "-". */
static int read_document(const char *path, char **ret_buf, size_t *ret_size,
                         struct gabi_error *reterr)
{
    int r = strcmp(path, "-") == 0
                ? gabi_read_fd(STDIN_FILENO, GABI_MAX_DOCUMENT_SIZE, ret_buf, ret_size)
                : gabi_read_file(path, GABI_MAX_DOCUMENT_SIZE, ret_buf, ret_size);

    if (r == -ESPIPE)
        return gabi_error_set(reterr, r, path,
                              "not a regular file (a named pipe, a device or a directory): "
                              "documents are read from files, or from standard input given "
                              "as \"-\"");
    if (r == -EFBIG)
        return gabi_error_set(reterr, r, path, "document is larger than %u bytes",
                              GABI_MAX_DOCUMENT_SIZE);
    if (r < 0)
        return gabi_error_set(reterr, r, path, "cannot read: %s", strerror(-r));
    return 0;
}

int gabi_hostcaps_load_file(const struct gabi_catalog *cat, const char *path,
                            struct gabi_hostcaps **ret, struct gabi_error *reterr)
{
    _cleanup_free_ char *buf = NULL;
    size_t size;
    int r = read_document(path, &buf, &size, reterr);

    return r < 0 ? r : gabi_hostcaps_parse(cat, path, buf, size, ret, reterr);
}

int gabi_pin_load_file(const struct gabi_catalog *cat, const char *path, struct gabi_pin **ret,
                       struct gabi_error *reterr)
{
    _cleanup_free_ char *buf = NULL;
    size_t size;
    int r = read_document(path, &buf, &size, reterr);

    return r < 0 ? r : gabi_pin_parse(cat, path, buf, size, ret, reterr);
}

int gabi_catalog_add_builtin(struct gabi_catalog *cat, struct gabi_error *reterr)
{
    for (size_t i = 0; i < gabi_builtin_catalog_n; i++) {
        char origin[256];
        int r;

        snprintf(origin, sizeof(origin), "builtin:%s", gabi_builtin_catalog[i].name);
        r = gabi_catalog_add_document(cat, 0, origin, gabi_builtin_catalog[i].text,
                                      strlen(gabi_builtin_catalog[i].text), reterr);
        if (r < 0)
            return r;
    }
    return 0;
}

static int has_json_suffix(const struct dirent *d)
{
    size_t len = strlen(d->d_name);

    return d->d_name[0] != '.' && len > 5 && strcmp(d->d_name + len - 5, ".json") == 0;
}

int gabi_catalog_add_dir(struct gabi_catalog *cat, int layer, const char *dir,
                         struct gabi_error *reterr)
{
    struct dirent **names = NULL;
    int n, r = 0;

    n = scandir(dir, &names, has_json_suffix, alphasort);
    if (n < 0)
        return gabi_error_set(reterr, -errno, dir, "cannot read catalog directory: %s",
                              strerror(errno));
    for (int i = 0; i < n; i++) {
        _cleanup_free_ char *path = NULL, *buf = NULL;
        size_t size;

        if (r >= 0) {
            if (asprintf(&path, "%s/%s", dir, names[i]->d_name) < 0) {
                path = NULL;
                r = -ENOMEM;
            } else {
                r = read_document(path, &buf, &size, reterr);
                if (r >= 0)
                    r = gabi_catalog_add_document(cat, layer, path, buf, size, reterr);
            }
        }
        free(names[i]);
    }
    free(names);
    return r;
}

int gabi_catalog_load_default(const char *const *dirs, size_t n_dirs, struct gabi_catalog **ret,
                              struct gabi_error *reterr)
{
    struct gabi_catalog *cat = gabi_catalog_new();
    const char *sys = getenv("GUESTABI_SYSTEM_CATALOG");
    int r;

    if (!cat)
        return -ENOMEM;
    if (!sys)
        sys = "/etc/guestabi/catalog.d";
    r = gabi_catalog_add_builtin(cat, reterr);
    if (r >= 0 && *sys && access(sys, F_OK) == 0)
        r = gabi_catalog_add_dir(cat, 1, sys, reterr);
    for (size_t i = 0; r >= 0 && i < n_dirs; i++)
        r = gabi_catalog_add_dir(cat, 2, dirs[i], reterr);
    if (r >= 0)
        r = gabi_catalog_finalize(cat, reterr);
    if (r < 0) {
        gabi_catalog_free(cat);
        return r;
    }
    *ret = cat;
    return 0;
}
