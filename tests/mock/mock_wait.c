/* mock_wait.c - the mock upstream's sleeps (stalls, delays between chunk
 * events). They run on the connection's own thread (thread-per-connection)
 * and end early when the peer hangs up, so a client that leaves during a
 * stall is seen at once, or when the mock shuts down, so SIGTERM never waits
 * for a stall. Shutdown is a pipe every waiter polls and nobody reads. */
#include "mock.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

static int stop_pipe[2] = {-1, -1};

int mock_wait_init(void)
{
    return pipe(stop_pipe);
}

void mock_wait_fini(void)
{
    for (int i = 0; i < 2; i++) {
        if (stop_pipe[i] >= 0)
            close(stop_pipe[i]);
        stop_pipe[i] = -1;
    }
}

void mock_wait_stop_all(void)
{
    ssize_t n = write(stop_pipe[1], "x", 1);

    (void)n; /* one byte wakes every poller; it is never read */
}

int mock_wait_conn_fd(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);

    return ci ? ci->connect_fd : -1;
}

int mock_wait_ms(int fd, int ms)
{
    long long deadline = mock_record_now_ms() + ms;
    struct pollfd pfd[2] = {
        {.fd = stop_pipe[0], .events = POLLIN},
        {.fd = fd, .events = POLLRDHUP},
    };

    for (;;) {
        long long left = deadline - mock_record_now_ms();
        int n;

        if (left <= 0)
            return 0;
        n = poll(pfd, fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n <= 0)
            continue;
        if (pfd[0].revents)
            return -1;
        if (pfd[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return -1;
    }
}
