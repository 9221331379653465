/* readytime.c: how long a server takes from exec to its first good answer.
 *
 *   readytime -u http://127.0.0.1:PORT [-n RUNS] [-l LOG] -- COMMAND [ARGS...]
 *
 * Each run forks and execs COMMAND (its output appended to LOG, default /dev/null), polls
 * connect + "GET /v1/health" every ~200 us until a 200 comes back, records the time since
 * just before fork, then stops the server with SIGTERM (SIGKILL after 10 s) and waits
 * for it. Prints each run's milliseconds on stderr and the median on stdout as
 * "ready_ms MEDIAN". Exit 1 if a run never becomes ready within 10 s or the server
 * exits first. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RUNS_MAX 1000
#define READY_LIMIT_S 10.0
#define STOP_LIMIT_S 10.0

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_us(long us)
{
	struct timespec ts = {0, us * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* 1 when GET /v1/health answered 200, 0 otherwise (not listening yet, or not ready). */
static int health_ok(const struct addrinfo *ai, const char *host_port)
{
	struct timeval tv = {1, 0};
	char req[512], resp[512];
	size_t have = 0;
	int fd, n, ok = 0;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		goto out;
	n = snprintf(req, sizeof(req),
	    "GET /v1/health HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", host_port);
	if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
		goto out;
	/* the status line is enough */
	while (have < 12) {
		ssize_t r = recv(fd, resp + have, sizeof(resp) - 1 - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			goto out;
		have += (size_t)r;
	}
	resp[have] = '\0';
	ok = strncmp(resp, "HTTP/1.1 200", 12) == 0 || strncmp(resp, "HTTP/1.0 200", 12) == 0;
out:
	close(fd);
	return ok;
}

/* Stops the child: SIGTERM, then SIGKILL when it does not exit in time. */
static void stop_child(pid_t pid)
{
	double deadline = now_s() + STOP_LIMIT_S;
	int status;

	kill(pid, SIGTERM);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_s() > deadline) {
			fprintf(stderr, "readytime: server did not stop on SIGTERM, killing it\n");
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return;
		}
		nap_us(1000);
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: readytime -u http://HOST:PORT [-n RUNS] [-l LOG] -- COMMAND [ARGS...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai;
	const char *url = NULL, *logpath = "/dev/null";
	char host[256], port[16], host_port[300];
	const char *hp, *colon;
	double ms[RUNS_MAX];
	long runs = 10;
	int ch, rc;

	while ((ch = getopt(argc, argv, "+u:n:l:")) != -1) {
		switch (ch) {
		case 'u': url = optarg; break;
		case 'n': runs = strtol(optarg, NULL, 10); break;
		case 'l': logpath = optarg; break;
		default: usage();
		}
	}
	if (url == NULL || optind >= argc || runs < 1 || runs > RUNS_MAX)
		usage();
	if (strncmp(url, "http://", 7) != 0 || (colon = strrchr(url + 7, ':')) == NULL)
		usage();
	hp = url + 7;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
	snprintf(port, sizeof(port), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
	snprintf(host_port, sizeof(host_port), "%s:%s", host, port);
	if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
		fprintf(stderr, "readytime: cannot resolve '%s': %s\n", host, gai_strerror(rc));
		return 2;
	}
	if (health_ok(ai, host_port)) {
		fprintf(stderr, "readytime: something already answers on %s\n", host_port);
		return 1;
	}
	for (long i = 0; i < runs; i++) {
		double t0, deadline;
		int status;
		pid_t pid;

		t0 = now_s();
		pid = fork();
		if (pid < 0) {
			perror("readytime: fork");
			return 1;
		}
		if (pid == 0) {
			int fd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
			execvp(argv[optind], argv + optind);
			perror("readytime: exec");
			_exit(127);
		}
		deadline = t0 + READY_LIMIT_S;
		while (!health_ok(ai, host_port)) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				fprintf(stderr, "readytime: the server exited before it was ready (see %s)\n",
				    logpath);
				return 1;
			}
			if (now_s() > deadline) {
				fprintf(stderr, "readytime: not ready after %.0f s\n", READY_LIMIT_S);
				stop_child(pid);
				return 1;
			}
			nap_us(200);
		}
		ms[i] = (now_s() - t0) * 1000.0;
		fprintf(stderr, "readytime: run %ld: %.2f ms\n", i + 1, ms[i]);
		stop_child(pid);
	}
	freeaddrinfo(ai);
	qsort(ms, (size_t)runs, sizeof(ms[0]), cmp_double);
	printf("ready_ms %.2f\n", runs % 2 ? ms[runs / 2] : (ms[runs / 2 - 1] + ms[runs / 2]) / 2);
	return 0;
}
