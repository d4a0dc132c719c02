#ifndef NRD_TEST_STORE_CORRUPT_H
#define NRD_TEST_STORE_CORRUPT_H

/* Overwrites with garbage every page that is the root of a table or index
 * of the named tables (NULL-terminated), leaving the schema readable: the
 * database opens, and reading those tables fails as "malformed". Returns
 * the number of pages overwritten, -1 on error. Lives under tests/store/
 * because only the store's code (and its tests) may see SQLite. */
int tu_store_corrupt_tables(const char *path, const char *const *tables);

/* Another process's write in progress, as far as the file can tell: a
 * connection of its own holding BEGIN IMMEDIATE on path. NULL on error;
 * tu_store_release_write commits and closes it. */
struct tu_store_hold;
struct tu_store_hold *tu_store_hold_write(const char *path);
void tu_store_release_write(struct tu_store_hold *h);

#endif
