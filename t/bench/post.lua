-- t/bench/post.lua: wrk script for `make bench`. Every request is a
-- channel.message.received with its own idempotency key (thread number + a per-thread
-- counter + a run prefix), so each one is a new event the gateway must store durably.
-- Environment: CRAB_BENCH_TOKEN (the lease), CRAB_BENCH_PREFIX (unique per run).
-- done() prints machine-readable lines that t/bench/run.sh reads back.

local threads = {}
local next_id = 0

function setup(thread)
	next_id = next_id + 1
	thread:set("tid", next_id)
	table.insert(threads, thread)
end

function init(args)
	counter = 0
	prefix = os.getenv("CRAB_BENCH_PREFIX") or "bench"
	headers = {
		["Authorization"] = "Bearer " .. (os.getenv("CRAB_BENCH_TOKEN") or ""),
		["Content-Type"] = "application/json",
	}
end

function request()
	counter = counter + 1
	local key = prefix .. "-" .. tid .. "-" .. counter
	local body = '{"type":"channel.message.received","idempotency_key":"' .. key ..
		'","text":"bench message","source":{"platform":"bench","channel_id":"c' .. tid ..
		'","actor_id":"a1","message_id":"' .. key .. '"}}'
	return wrk.format("POST", "/v1/events", headers, body)
end

function done(summary, latency, requests)
	local e = summary.errors
	local bad = e.status
	io.write(string.format("bench_requests %d\n", summary.requests))
	io.write(string.format("bench_non2xx %d\n", bad))
	io.write(string.format("bench_2xx %d\n", summary.requests - bad))
	io.write(string.format("bench_socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
	io.write(string.format("bench_duration_us %d\n", summary.duration))
	io.write(string.format("bench_p50_us %d\n", latency:percentile(50)))
	io.write(string.format("bench_p99_us %d\n", latency:percentile(99)))
	io.write(string.format("bench_max_us %d\n", latency.max))
end
