-- Stands in for HAProxy's Lua runtime, which cannot run on the test host:
-- it provides just the parts of `core`, TXN and Channel the ja4 action
-- uses, with the documented semantics (Channel:data(0) returns what is
-- buffered; Channel:data(0, n) waits until n bytes are buffered, here by
-- "receiving" more of the client's bytes).
--
-- Reads lines "<scenario> <buffered> <hex>" from stdin: the client's bytes
-- are <hex>, of which <buffered> are in the buffer when the action runs.
-- Scenarios: "open" (more can arrive), "closed" (the client sent nothing
-- more), "twice" (the action runs two times on the same session).
-- Prints "ja4=<v> ja4_r=<v> waits=<n> warnings=<n>".
local actions = {}
local warnings = 0
core = {
	register_action = function(name, kinds, fn, nargs)
		actions[name] = { kinds = kinds, fn = fn, nargs = nargs }
	end,
	Warning = function(msg)
		warnings = warnings + 1
		io.stderr:write("warning: " .. msg .. "\n")
	end,
}
require("ja4")
local act = assert(actions["ja4"], "ja4.lua did not register the action ja4")
assert(act.kinds[1] == "tcp-req" and #act.kinds == 1 and act.nargs == 0, "action must be tcp-req only, no arguments")

local function unhex(h)
	return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

for line in io.lines() do
	local scenario, buffered, hex = line:match("^(%S+) (%d+) (%x*)$")
	local all = unhex(hex)
	local have = math.min(tonumber(buffered), #all)
	local waits = 0
	local vars = {}
	local chan = {}
	function chan:data(offset, length)
		assert(offset == 0, "the action reads from the start of the buffer")
		if length ~= nil and length > have then
			if scenario == "closed" then
				return all:sub(1, have)
			end
			waits = waits + 1
			have = math.min(length, #all)
		end
		return all:sub(1, length and math.min(length, have) or have)
	end
	function chan:is_full() return false end
	function chan:may_recv() return scenario ~= "closed" and have < #all end
	local txn = {
		req = chan,
		c = {}, -- no converters: exercises the pure-Lua SHA-256 fallback
		get_var = function(_, k) return vars[k] end,
		set_var = function(_, k, v) vars[k] = v end,
	}
	warnings = 0
	act.fn(txn)
	if scenario == "twice" then
		vars["sess.ja4_r"] = "kept"
		act.fn(txn)
	end
	print(string.format("ja4=%s ja4_r=%s waits=%d warnings=%d", tostring(vars["sess.ja4"]), tostring(vars["sess.ja4_r"]), waits, warnings))
end
