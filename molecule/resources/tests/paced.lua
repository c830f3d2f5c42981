-- wrk script for the deploy tests: each connection waits WRK_DELAY_MS (default 1000) between its
-- requests, so the load is steady and paced (connections x 1000 / WRK_DELAY_MS requests/s) instead
-- of flat out. A flat-out wrk on the scenario's 2-CPU machine saturates every container at once and
-- makes each rolling deploy three times slower without testing anything more: the drain, switch and
-- re-admission of each host are exercised by any steady stream of requests in flight.
local pause = tonumber(os.getenv("WRK_DELAY_MS") or "1000")

function delay()
  return pause
end
