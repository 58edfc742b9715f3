/* The floor of a per-connection relay process's memory: the least any
 * process that speaks TLS upstream with the system's OpenSSL maps.  It
 * connects to an SMTP submission server, says EHLO, STARTTLS, completes
 * the handshake (no certificate check: it measures, it sends nothing),
 * says EHLO again and prints its VmRSS in KiB.  Built and run by
 * bench/lib/relay.py beside `tokend relay`'s sessions.
 *
 * Usage: tls_floor PORT   (on 127.0.0.1) */
#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int reply(int fd, char *buf, size_t cap)
{
    /* Reads until a line whose fourth byte is a space: the last of a reply. */
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r <= 0)
            return -1;
        n += (size_t)r;
        buf[n] = '\0';
        char *last = buf;
        for (char *p = strstr(buf, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n"))
            last = p + 2;
        if (strlen(last) >= 4 && last[3] == ' ' && strstr(last, "\r\n"))
            return atoi(last);
    }
}

static long vmrss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: tls_floor PORT\n");
        return 64;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char buf[8192];
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        reply(fd, buf, sizeof buf) != 220)
        return fprintf(stderr, "tls_floor: no greeting\n"), 1;
    const char *ehlo = "EHLO floor\r\n", *starttls = "STARTTLS\r\n";
    if (write(fd, ehlo, strlen(ehlo)) < 0 || reply(fd, buf, sizeof buf) != 250 ||
        write(fd, starttls, strlen(starttls)) < 0 || reply(fd, buf, sizeof buf) != 220)
        return fprintf(stderr, "tls_floor: no STARTTLS\n"), 1;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1)
        return fprintf(stderr, "tls_floor: no TLS\n"), 1;
    int n;
    if (SSL_write(ssl, ehlo, (int)strlen(ehlo)) <= 0 ||
        (n = SSL_read(ssl, buf, sizeof buf - 1)) <= 0 || strncmp(buf, "250", 3) != 0)
        return fprintf(stderr, "tls_floor: no EHLO over TLS\n"), 1;
    printf("%ld\n", vmrss_kib());
    SSL_shutdown(ssl);
    return 0;
}
