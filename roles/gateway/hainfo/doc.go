// Package hainfo is the gateway's HAProxy status tool (`appliance hainfo`,
// also installed as `hainfo`). It reads HAProxy's stats socket ("show info"
// and "show stat") and prints each backend's servers with their state,
// traffic, errors and last health check, plus frontend and backend totals.
//
// # Reading the stats
//
// Columns of "show stat" are found by the names in its header line, never by
// position, so the same code reads HAProxy 2.6 (Debian 12) and 3.2 (the
// gateway image), whose column sets differ. A column HAProxy does not send is
// shown as "-" in the table and null in JSON. A reply that is not the
// expected data (e.g. "Unknown command" from the master CLI, or "Permission
// denied" from a socket whose level is too low) is an error that names the
// socket and quotes HAProxy's answer.
//
// # Rates and totals
//
// RATE is req_rate (HTTP requests over the last second) where HAProxy reports
// it, which in 2.6 to 3.2 is only for frontends. Everywhere else it is rate,
// new sessions over the last second, and is labelled sess/s. For an HTTP
// server each request is its own session, so the two agree there.
//
// TOTAL, for HTTP rows, is requests: req_tot when HAProxy reports it for the
// row (frontends and backends; servers too in 2.6 and 3.2, although the
// management guide lists it for frontends and backends only), otherwise the
// sum of the row's hrsp_1xx..hrsp_other response counters. stot is not used
// for HTTP servers because it counts connection attempts: one request sent to
// a server that refused connections (the first try and three retries) added
// four to its stot, one to econ and none to req_tot. For TCP
// rows there are no requests, so TOTAL is stot, sessions (one per client
// connection), labelled sess. Health checks count in neither.
//
// CHKFAIL is HAProxy's chkfail (failed checks while the server was up); the
// backend line shows the sum over its servers. ECON and ERESP on the backend
// line are HAProxy's own backend counters, which also count errors not tied
// to one server.
//
// # JSON document
//
// --json prints one Report (see its type for field comments); --watch --json
// prints one compact Report per line. The fields are:
//
//	socket                      stats socket as given
//	time                        read time, RFC 3339, UTC
//	info.name, info.version     product and version
//	info.pid                    pid of the worker that answered
//	info.uptime                 HAProxy's text, e.g. "0d 0h01m02s"
//	info.uptime_seconds
//	info.current_connections    CurrConns
//	info.processes              Nbproc (null when not reported)
//	info.threads                Nbthread
//	frontends[]                 name, status, mode, current_sessions,
//	                            rate{value,unit}, total{value,unit},
//	                            request_errors (ereq), denied_requests (dreq)
//	backends[]                  name, status, mode, algorithm,
//	                            servers_in_service (act + bck: servers that
//	                            take new traffic; not DRAIN or MAINT),
//	                            current_sessions, rate, total,
//	                            connection_errors (econ),
//	                            response_errors (eresp),
//	                            check_failures (sum of servers' chkfail),
//	                            servers[]
//	backends[].servers[]        name, address, status (verbatim, e.g.
//	                            "UP 1/3"), backup, current_sessions, rate,
//	                            total, connection_errors, response_errors,
//	                            check_failures (chkfail), last_check
//	last_check                  null without health checks, else status,
//	                            running, code, duration_ms, description
//	                            (check_desc), detail (last_chk), summary
//	                            (the table's text, e.g. "L7OK/200 in 1ms")
//
// rate.unit is "req/s" or "sess/s"; total.unit is "requests" or "sessions".
// Numbers HAProxy did not report are null. New fields may be added; existing
// ones keep their names and meaning.
package hainfo
