/* An osu-style TCP ping-pong, the same program between two guests of a
 * job network and between two processes on the host (BenchmarkJobNetwork):
 *   pingpong server PORT
 *   pingpong client HOST PORT
 * The client prints the round-trip latency of 1-byte messages (half of
 * it, as osu_latency does) and the one-way bandwidth of 1 MiB messages. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { ROUNDS = 2000, BIG = 1 << 20, BIGS = 64 };

static double now(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void full(int fd, char *buf, size_t n, int send_it) {
	while (n > 0) {
		ssize_t k = send_it ? write(fd, buf, n) : read(fd, buf, n);
		if (k <= 0) {
			perror(send_it ? "write" : "read");
			exit(1);
		}
		buf += k;
		n -= (size_t)k;
	}
}

int main(int argc, char **argv) {
	static char big[BIG];
	char one = 'x';
	int one_flag = 1, fd;
	if (argc == 3 && strcmp(argv[1], "server") == 0) {
		int ls = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
		setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one_flag, sizeof one_flag);
		if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1)) {
			perror("listen");
			return 1;
		}
		fd = accept(ls, 0, 0);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_flag, sizeof one_flag);
		for (int i = 0; i < ROUNDS; i++) {
			full(fd, &one, 1, 0);
			full(fd, &one, 1, 1);
		}
		for (int i = 0; i < BIGS; i++)
			full(fd, big, BIG, 0);
		full(fd, &one, 1, 1);
		return 0;
	}
	if (argc != 4 || strcmp(argv[1], "client") != 0) {
		fprintf(stderr, "usage: pingpong server PORT | pingpong client HOST PORT\n");
		return 2;
	}
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(argv[2], argv[3], &hints, &ai)) {
		fprintf(stderr, "cannot resolve %s\n", argv[2]);
		return 1;
	}
	for (int tries = 0;; tries++) { /* the server may still be starting */
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		if (tries > 600) {
			perror("connect");
			return 1;
		}
		usleep(100000);
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one_flag, sizeof one_flag);
	double t0 = now();
	for (int i = 0; i < ROUNDS; i++) {
		full(fd, &one, 1, 1);
		full(fd, &one, 1, 0);
	}
	double lat = (now() - t0) / ROUNDS / 2;
	t0 = now();
	for (int i = 0; i < BIGS; i++)
		full(fd, big, BIG, 1);
	full(fd, &one, 1, 0);
	double bw = (double)BIG * BIGS / (now() - t0);
	printf("pingpong latency_us %.1f bandwidth_MBps %.1f\n", lat * 1e6, bw / 1e6);
	return 0;
}
