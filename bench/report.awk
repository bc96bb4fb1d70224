# bench/report.awk - bench/run.sh's report from its rows (one per wrk run):
#   target mode conns rps p50 p90 p99 errors cpu_us_per_req rss_kb opened resumed requests
# Rows of the same (target, mode, conns) are repeats: the report shows the
# median run by req/s, and the median CPU per request of the runs.
function med_row(key,   n, i, j, t, idx) {
    n = cnt[key]
    for (i = 1; i <= n; i++) idx[i] = i
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (row[key, idx[j], 4] + 0 < row[key, idx[i], 4] + 0) { t = idx[i]; idx[i] = idx[j]; idx[j] = t }
    return idx[int((n + 1) / 2)]
}
function med_col(key, col,   n, i, j, t, v) {
    n = cnt[key]
    for (i = 1; i <= n; i++) v[i] = row[key, i, col] + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
        if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return v[int((n + 1) / 2)]
}
function rps(key) { return (key in cnt) ? row[key, med[key], 4] + 0 : 0 }
function cpu(key) { return (key in cnt) ? med_col(key, 9) : 0 }
function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
function runs(key,   i, s) {
    if (cnt[key] < 2) return ""
    s = " (" cnt[key] " runs:"
    for (i = 1; i <= cnt[key]; i++) s = s " " row[key, i, 4]
    return s ")"
}
# the nginx of the same shape: same workers as sluice's threads, same scheme
function peer(t) {
    if (t ~ /^sluice-1t-https/) return "nginx-1w-https"
    if (t ~ /^sluice-1t/) return "nginx-1w"
    if (t ~ /^sluice-2t/) return "nginx-2w"
    return ""
}
{
    key = $1 " " $2 " " $3
    if (!(key in cnt)) order[++nk] = key
    cnt[key]++
    for (f = 1; f <= NF; f++) row[key, cnt[key], f] = $f
}
END {
    for (k = 1; k <= nk; k++) med[order[k]] = med_row(order[k])
    d64 = rps("direct plain 64"); n1 = rps("nginx-1w plain 64"); n2 = rps("nginx-2w plain 64")
    nmax = n1 > n2 ? n1 : n2
    valid = d64 >= 2 * nmax
    dt = rps("direct-tls plain 64"); nt = rps("nginx-1w-https plain 64")

    printf "# sluice benchmark, %s, commit %s\n\n", D, C
    if (valid)
        printf "**Run VALID**: the upstream answered %d req/s directly at 64 connections, %.2f × the faster nginx through it (%d; required ≥ 2).\n\n", d64, nmax ? d64 / nmax : 0, nmax
    else
        printf "**Run INVALID**: the upstream answered %d req/s directly at 64 connections, only %.2f × the faster nginx through it (%d; required ≥ 2): the upstream, not the proxies, may be what this run measured. Do not quote its ratios.\n\n", d64, nmax ? d64 / nmax : 0, nmax
    printf "Machine: %s cores, %s, Linux %s; nginx %s. wrk (one thread), the upstream, nginx and sluice share these cores on loopback, ", NP, CPU, K, NGV
    printf "and so did other sessions' builds and tests: load average %s at the start, %s at the end. Requests/s swing with that load; CPU per request much less.\n\n", L0, L1
    printf "Upstream: bench/fast_upstream (one epoll thread). sluice: auth, context, keyring (8 fake keys), retry, sse; metrics on; access log at INFO into a file. "
    printf "nginx: `proxy_pass` with upstream keep-alive, `proxy_buffering off`, access log off. Body: bench/chat.lua (~1.2 KB). "
    printf "Each run %d s after a 1 s warm-up; rows marked with runs are medians of %d (req/s, p50, p99 of the median run; CPU the median of the runs). ", DUR, REP
    printf "CPU per request: utime+stime of the target's processes (all threads; nginx master and workers) over the run / requests.\n\n"

    printf "## Headline: plain requests, 64 connections\n\n"
    printf "| target | req/s | × nginx (same workers) | p50 µs | p99 µs | CPU µs / req | × nginx CPU | RSS MB |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    split("nginx-1w nginx-2w sluice-1t sluice-2t", hl, " ")
    for (i = 1; i <= 4; i++) {
        key = hl[i] " plain 64"
        if (!(key in cnt)) continue
        m = med[key]; p = peer(hl[i])
        printf "| %s | %d | %s | %s | %s | %.1f | %s | %.1f |\n", hl[i], rps(key),
            p ? ratio(rps(key), rps(p " plain 64")) : "1.00", row[key, m, 5], row[key, m, 7],
            cpu(key), p ? ratio(cpu(key), cpu(p " plain 64")) : "1.00", row[key, m, 10] / 1024
    }
    printf "\nTargets (issue 16): sluice's CPU per request ≤ 2.5 × nginx's, req/s ≥ 0.5 × nginx's, like for like.\n"

    printf "\n## HTTPS upstream (TLS-terminating nginx in front of the same upstream), 64 connections\n\n"
    printf "| target | req/s | × nginx | p50 µs | p99 µs | CPU µs / req | × nginx CPU | TLS connections opened (resumed sessions) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    split("direct-tls nginx-1w-https sluice-1t-https", ht, " ")
    for (i = 1; i <= 3; i++) {
        key = ht[i] " plain 64"
        if (!(key in cnt)) continue
        m = med[key]
        printf "| %s | %d | %s | %s | %s | %.1f | %s | %s (%s) |\n", ht[i], rps(key),
            ratio(rps(key), nt), row[key, m, 5], row[key, m, 7], cpu(key),
            ratio(cpu(key), cpu("nginx-1w-https plain 64")), row[key, m, 11], row[key, m, 12]
    }
    tlsok = (dt >= 2 * nt) ? "it answered ≥ 2 × what nginx did through it." : sprintf("it answered only %.2f × what nginx did through it: the terminator, not the proxies, may cap these rows.", nt ? dt / nt : 0)
    printf "\ndirect-tls is wrk straight to the terminator (its CPU is the terminator's: 2 workers); %s ", tlsok
    printf "Connections are counted from the terminator's access log (`$connection_requests` = 1) during the measured run, after a 1 s warm-up that opened the pools.\n"

    printf "\n## Every run\n\n"
    printf "| target | mode | conns | req/s | p50 µs | p90 µs | p99 µs | errors | CPU µs / req | RSS kB | upstream conns opened |\n"
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (k = 1; k <= nk; k++) {
        key = order[k]; m = med[key]; split(key, kk, " ")
        printf "| %s | %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s |\n", kk[1], kk[2], kk[3],
            row[key, m, 4], runs(key), row[key, m, 5], row[key, m, 6], row[key, m, 7],
            row[key, m, 8], (cnt[key] > 1) ? sprintf("%.1f", cpu(key)) : row[key, m, 9],
            row[key, m, 10], row[key, m, 11]
    }
    printf "\n## Idle and memory\n\n"
    printf "CPU ticks used by each sluice left idle %d s after the load (`/proc/<pid>/stat`, 1 tick = 10 ms): %s.\n\n", IDLES, IDLET
    printf "sluice (2 threads) RSS at start, idle: %d kB; peak (VmHWM) over all the runs: %d kB.\n\n", IDLE, PEAK
    printf "2,000 concurrent streams: %s\n", STREAMS
}
