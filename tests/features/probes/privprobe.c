/* privprobe.c - what a workload may do as a process, asked from inside it (privileges.feature compiles it
 * statically, so the same binary runs on the host and in any image):
 *   privprobe euid   prints "euid=<effective uid>": a setuid-root copy shows whether execve granted privilege
 *   privprobe raw    opens a raw ICMP socket (needs CAP_NET_RAW): "raw socket: opened", or the error and exit
 * 1
 */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "euid") == 0) {
        printf("euid=%u\n", (unsigned)geteuid());
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "raw") == 0) {
        int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
        if (fd < 0) {
            printf("raw socket: %s\n", strerror(errno));
            return 1;
        }
        close(fd);
        printf("raw socket: opened\n");
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "as") == 0) {
        unsigned id = (unsigned)strtoul(argv[2], NULL, 10);
        if (setgroups(0, NULL) != 0 || setgid(id) != 0 || setuid(id) != 0) {
            printf("become uid %u: %s\n", id, strerror(errno));
            return 1;
        }
        execv(argv[3], argv + 3);
        printf("exec %s: %s\n", argv[3], strerror(errno));
        return 127;
    }
    fprintf(stderr, "usage: privprobe euid|raw|as UID PROG [ARG...]\n");
    return 2;
}
