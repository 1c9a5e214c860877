/* Loaded into the test and demo phones (baresip) with LD_PRELOAD: a socket bound to the
 * wildcard address (0.0.0.0 or ::) is bound to loopback (127.0.0.1 or ::1) instead, port
 * unchanged. baresip 1.1.0 binds its RTP and RTCP sockets to the wildcard whatever its
 * config says (stream.c: "we listen on all interfaces"); its SIP, control and media then all
 * stay on loopback. Built by acd/tools/softphone.py with the system's C compiler. */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
	if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		struct sockaddr_in v4;
		memcpy(&v4, addr, sizeof v4);
		if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
			v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			return syscall(SYS_bind, fd, &v4, sizeof v4);
		}
	}
	else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		struct sockaddr_in6 v6;
		memcpy(&v6, addr, sizeof v6);
		if (IN6_IS_ADDR_UNSPECIFIED(&v6.sin6_addr)) {
			v6.sin6_addr = in6addr_loopback;
			return syscall(SYS_bind, fd, &v6, sizeof v6);
		}
	}
	return syscall(SYS_bind, fd, addr, len);
}
