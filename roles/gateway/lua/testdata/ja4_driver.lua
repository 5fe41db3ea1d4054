-- Test driver: reads one hex-encoded ClientHello per line from stdin and
-- prints, per line, either "OK <ja4> <ja4_r> <ja4_o> <ja4_ro>" or
-- "ERR <need or -> <message>". With the single argument "sha256" it instead
-- prints the SHA-256 of each hex-decoded line.
local ja4 = require("ja4")

local function unhex(h)
	return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local mode = arg[1]
for line in io.lines() do
	local raw = unhex(line)
	if mode == "sha256" then
		print(ja4.sha256_hex(raw))
	else
		local a, b, c, d = ja4.fingerprint(raw)
		if a then
			print("OK " .. a .. " " .. b .. " " .. c .. " " .. d)
		else
			print("ERR " .. (c and tostring(c) or "-") .. " " .. b)
		end
	end
end
