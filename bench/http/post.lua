wrk.method = "POST"
wrk.body = '{"name":"widget","quantity":3,"tags":["a","b"]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["User-Agent"] = "wrk-bench"
