/* privprobe.c - what a workload may do as a process, asked from inside it (privileges.feature compiles it
 * statically, so the same binary runs on the host and in any image):
 *   privprobe euid   prints "euid=<effective uid>": a setuid-root copy shows whether execve granted privilege
 *   privprobe raw    opens a raw ICMP socket (needs CAP_NET_RAW): "raw socket: opened", or the error and exit
 * 1
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
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
    fprintf(stderr, "usage: privprobe euid|raw\n");
    return 2;
}
