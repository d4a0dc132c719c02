#ifndef NRD_TEST_STORE_CORRUPT_H
#define NRD_TEST_STORE_CORRUPT_H

/* Overwrites with garbage every page that is the root of a table or index
 * of the named tables (NULL-terminated), leaving the schema readable: the
 * database opens, and reading those tables fails as "malformed". Returns
 * the number of pages overwritten, -1 on error. Lives under tests/store/
 * because only the store's code (and its tests) may see SQLite. */
int tu_store_corrupt_tables(const char *path, const char *const *tables);

#endif
