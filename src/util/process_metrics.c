/* The standard process_* metrics of the Prometheus client libraries, read
 * from /proc on each scrape (a scrape is rare; nothing is cached). A value
 * that cannot be read is left out rather than rendered wrong. */

#include "nrd/metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The fields of /proc/self/stat after the command name: fields[0] is field 3
 * (state). Returns how many were read. */
static size_t read_stat_fields(unsigned long long *fields, size_t cap)
{
  char buf[1024];
  size_t n = 0;
  FILE *fp = fopen("/proc/self/stat", "r");
  if (!fp)
    return 0;
  size_t len = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[len] = '\0';
  char *p = strrchr(buf, ')'); /* the name may hold spaces and parentheses */
  if (!p)
    return 0;
  p += 2; /* ") " */
  if (*p)
    p += 1; /* the state letter */
  fields[n++] = 0;
  while (n < cap && *p) {
    char *end;
    fields[n] = strtoull(p, &end, 10);
    if (end == p)
      break;
    n++;
    p = end;
  }
  return n;
}

/* Seconds since the epoch when the system booted (btime of /proc/stat), or 0. */
static unsigned long long boot_time(void)
{
  char line[256];
  unsigned long long bt = 0;
  FILE *fp = fopen("/proc/stat", "r");
  if (!fp)
    return 0;
  while (fgets(line, sizeof line, fp)) {
    if (strncmp(line, "btime ", 6) == 0) {
      bt = strtoull(line + 6, NULL, 10);
      break;
    }
  }
  fclose(fp);
  return bt;
}

static long open_fds(void)
{
  long n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return -1;
  for (struct dirent *e = readdir(d); e; e = readdir(d)) {
    if (e->d_name[0] != '.')
      n++;
  }
  closedir(d);
  return n - 1; /* the directory's own fd */
}

static void gauge(struct nrd_buf *out, const char *name, const char *type, const char *help,
                  double value)
{
  nrd_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                 value);
}

void nrd_metrics_render_process(struct nrd_buf *out)
{
  /* Indexes into fields[]: field number - 3 (utime is field 14). */
  enum { F_UTIME = 11, F_STIME = 12, F_START = 19, F_VSIZE = 20, F_RSS = 21, F_N = 22 };
  unsigned long long fields[F_N];
  long ticks = sysconf(_SC_CLK_TCK);
  long page = sysconf(_SC_PAGESIZE);
  struct rlimit rl;

  if (read_stat_fields(fields, F_N) == F_N && ticks > 0 && page > 0) {
    gauge(out, "process_cpu_seconds_total", "counter",
          "Total user and system CPU time spent in seconds.",
          (double)(fields[F_UTIME] + fields[F_STIME]) / (double)ticks);
    unsigned long long bt = boot_time();
    if (bt)
      gauge(out, "process_start_time_seconds", "gauge",
            "Start time of the process since unix epoch in seconds.",
            (double)bt + (double)fields[F_START] / (double)ticks);
    gauge(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
          (double)fields[F_VSIZE]);
    gauge(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
          (double)fields[F_RSS] * (double)page);
  }
  long fds = open_fds();
  if (fds >= 0)
    gauge(out, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    gauge(out, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
          (double)rl.rlim_cur);
}
