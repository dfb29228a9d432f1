/* tcpprobe.c - byte counters of a process's TCP connections to a peer port. */
#include "tcpprobe.h"

#include <dirent.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "mem.h"

uint64_t tcp_progress_to_port(int port)
{
    uint64_t total = 0;
    cleanup_dir DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int self = dirfd(d);
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end = NULL;
        long fd = strtol(de->d_name, &end, 10);
        if (!end || *end || fd < 0 || fd == self)
            continue;
        struct stat st;
        if (fstat((int)fd, &st) < 0 || !S_ISSOCK(st.st_mode))
            continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        if (getpeername((int)fd, (struct sockaddr *)&ss, &sl) < 0)
            continue;
        int p = ss.ss_family == AF_INET    ? ntohs(((struct sockaddr_in *)&ss)->sin_port)
                : ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : -1;
        if (p != port)
            continue;
        struct tcp_info ti;
        socklen_t tl = sizeof(ti);
        if (getsockopt((int)fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
            tl >= offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
            total += ti.tcpi_bytes_acked + ti.tcpi_bytes_received;
    }
    return total;
}
