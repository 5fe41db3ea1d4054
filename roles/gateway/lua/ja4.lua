-- ja4.lua: JA4 TLS client fingerprints (FoxIO JA4 specification,
-- technical_details/JA4.md in github.com/FoxIO-LLC/ja4) computed from the raw
-- ClientHello bytes a client sends on a TCP connection.
--
-- The module is two layers:
--   * a pure parser and fingerprinter of raw bytes, usable from plain Lua 5.4
--     (`local ja4 = require("ja4")`, then `ja4.fingerprint(raw)`); the Go
--     package verify/ja4 is its reference and the tests hold them equal;
--   * HAProxy glue, registered only when the file is loaded by HAProxy: the
--     action `lua.ja4` for `tcp-request content` rules.
--
-- Working from the raw bytes, rather than from what the TLS library exposes
-- after the handshake, keeps everything JA4 needs: the client's first
-- offered ALPN value, the extension order and the signature algorithms.
--
-- HAProxy configuration the glue expects (the TLS-terminating frontend reads
-- the result from the session variables):
--
--   global
--       # HAProxy 3.1+ warns unless this is set before any lua-load; the
--       # module returns no booleans, so either value works.
--       tune.lua.bool-sample-conversion normal
--       lua-load /usr/share/haproxy/lua/ja4.lua
--       # A ClientHello must fit in one buffer; post-quantum key shares make
--       # them close to 2 kB and some clients pad further.
--       tune.bufsize 32768
--
--   frontend tls_in
--       mode tcp
--       bind :443
--       # Hold the connection until the ClientHello is buffered, at most
--       # 5 s: req.ssl_hello_type is 1 once the handshake message's length
--       # is buffered; for a hello split over records the action itself
--       # waits for the remaining record headers.
--       tcp-request inspect-delay 5s
--       tcp-request content lua.ja4 if { req.ssl_hello_type 1 }
--       tcp-request content accept if { req.ssl_hello_type 1 }
--       # ... then hand the connection, and var(sess.ja4), to the TLS
--       # frontend (e.g. a PROXY v2 TLV over an internal socket).
--
-- The action sets:
--   sess.ja4    the fingerprint, or "unparsed" when the buffered bytes are
--               not a complete, well-formed ClientHello
--   sess.ja4_r  the raw (unhashed, sorted) form, for debugging; unset when
--               unparsed
-- Hashing uses HAProxy's sha2 and hex converters when present (OpenSSL
-- builds) and pure Lua otherwise. The action never rejects or closes a
-- connection: a failure is logged as a warning and the connection continues
-- with the "unparsed" marker.

local ja4 = {}

-- The marker stored in sess.ja4 when no fingerprint could be computed.
ja4.UNPARSED = "unparsed"

local sbyte, sunpack, spack, sformat, srep = string.byte, string.unpack, string.pack, string.format, string.rep
local tconcat, tsort = table.concat, table.sort

---------------------------------------------------------------------------
-- SHA-256 (FIPS 180-4) in pure Lua 5.4, on native 64-bit integers masked to
-- 32 bits. Used when HAProxy's sha2 converter is unavailable, and always
-- under plain lua5.4.
---------------------------------------------------------------------------

local K = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local M32 = 0xffffffff

local function ror(x, n)
	return ((x >> n) | (x << (32 - n))) & M32
end

-- sha256_hex returns the lower-case hex SHA-256 digest of string s.
local function sha256_hex(s)
	local len = #s
	-- Pad to a multiple of 64 bytes: 0x80, zeros, then the bit length.
	local msg = s .. "\128" .. srep("\0", (55 - len) % 64) .. spack(">I8", len * 8)
	local h1, h2, h3, h4 = 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a
	local h5, h6, h7, h8 = 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19
	local w = {}
	for chunk = 1, #msg, 64 do
		for i = 1, 16 do
			w[i] = sunpack(">I4", msg, chunk + (i - 1) * 4)
		end
		for i = 17, 64 do
			local x, y = w[i - 15], w[i - 2]
			local s0 = ror(x, 7) ~ ror(x, 18) ~ (x >> 3)
			local s1 = ror(y, 17) ~ ror(y, 19) ~ (y >> 10)
			w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M32
		end
		local a, b, c, d, e, f, g, h = h1, h2, h3, h4, h5, h6, h7, h8
		for i = 1, 64 do
			local S1 = ror(e, 6) ~ ror(e, 11) ~ ror(e, 25)
			local ch = (e & f) ~ ((~e) & g)
			local t1 = (h + S1 + ch + K[i] + w[i]) & M32
			local S0 = ror(a, 2) ~ ror(a, 13) ~ ror(a, 22)
			local maj = (a & b) ~ (a & c) ~ (b & c)
			h, g, f, e, d, c, b, a = g, f, e, (d + t1) & M32, c, b, a, (t1 + S0 + maj) & M32
		end
		h1, h2, h3, h4 = (h1 + a) & M32, (h2 + b) & M32, (h3 + c) & M32, (h4 + d) & M32
		h5, h6, h7, h8 = (h5 + e) & M32, (h6 + f) & M32, (h7 + g) & M32, (h8 + h) & M32
	end
	return sformat("%08x%08x%08x%08x%08x%08x%08x%08x", h1, h2, h3, h4, h5, h6, h7, h8)
end
ja4.sha256_hex = sha256_hex

---------------------------------------------------------------------------
-- ClientHello parser (RFC 8446 §4.1.2, §5.1). It accepts exactly what the
-- Go reference accepts; every failure returns nil and a message, and input
-- that is only cut short also returns the total input length needed.
---------------------------------------------------------------------------

local MAX_RECORD = 16384 -- RFC 8446 §5.1: a plaintext fragment is at most 2^14 bytes

local function truncated(what, need, have)
	return nil, sformat("truncated ClientHello: %s needs %d bytes of input, only %d present", what, need, have), need
end

-- reassemble concatenates handshake record payloads until they hold the
-- first handshake message; returns its body and the bytes of input used.
local function reassemble(b)
	local n = #b
	local off = 0
	local parts, got, want = {}, 0, nil
	while true do
		if n < off + 5 then
			return truncated("TLS record header", off + 5, n)
		end
		local ctype, vmajor, vminor, rlen = sunpack(">BBBI2", b, off + 1)
		if ctype ~= 0x16 then
			if off == 0 then
				return nil, sformat("not a TLS handshake record: first byte is 0x%02x, a ClientHello record starts with 0x16", ctype)
			end
			return nil, sformat("record at offset %d has content type 0x%02x before the ClientHello is complete; only handshake records (0x16) may carry it", off, ctype)
		end
		if vmajor ~= 3 then
			return nil, sformat("not a TLS handshake record: record version 0x%02x%02x at offset %d, want 0x03xx", vmajor, vminor, off)
		end
		if rlen == 0 or rlen > MAX_RECORD then
			return nil, sformat("record at offset %d declares %d payload bytes, valid is 1 to %d", off, rlen, MAX_RECORD)
		end
		local stop = off + 5 + rlen
		if n < stop then
			return truncated(sformat("TLS record at offset %d", off), stop, n)
		end
		parts[#parts + 1] = b:sub(off + 6, stop)
		got = got + rlen
		off = stop
		if want == nil and got >= 4 then
			local head = #parts[1] >= 4 and parts[1] or tconcat(parts)
			local htype, hlen = sunpack(">BI3", head)
			if htype ~= 1 then
				return nil, sformat("handshake message type is %d, a ClientHello is type 1", htype)
			end
			want = hlen
		end
		if want ~= nil and got >= 4 + want then
			return tconcat(parts):sub(5, 4 + want), off
		end
	end
end

-- A cursor over s[pos .. limit]; each read names its field for errors.
local Cursor = {}
Cursor.__index = Cursor

local function cursor(s, first, last)
	return setmetatable({ s = s, p = first, e = last }, Cursor)
end

function Cursor:left()
	return self.e - self.p + 1
end

-- take skips n bytes and returns the range they occupy.
function Cursor:take(n, field)
	if self.err then
		return nil
	end
	if self:left() < n then
		self.err = sformat("%s needs %d bytes, only %d left in its enclosing structure", field, n, self:left())
		return nil
	end
	local first = self.p
	self.p = self.p + n
	return first, first + n - 1
end

function Cursor:u8(field)
	local first = self:take(1, field)
	return first and sbyte(self.s, first) or 0
end

function Cursor:u16(field)
	local first = self:take(2, field)
	return first and sunpack(">I2", self.s, first) or 0
end

-- vec8/vec16 read a length-prefixed vector (RFC 8446 §3.4) and return a
-- cursor over its content, or nil.
-- The length's field name is only built when an error needs it: this runs
-- for every vector of every ClientHello.
function Cursor:vec8(field)
	local n = self:left() >= 1 and sbyte(self.s, self.p) or nil
	if n then
		self.p = self.p + 1
	else
		self:take(1, field .. " length")
		n = 0
	end
	local first, last = self:take(n, field)
	return first and cursor(self.s, first, last)
end

function Cursor:vec16(field)
	local n
	if self:left() >= 2 and not self.err then
		n = sunpack(">I2", self.s, self.p)
		self.p = self.p + 2
	else
		self:take(2, field .. " length")
		n = 0
	end
	local first, last = self:take(n, field)
	return first and cursor(self.s, first, last)
end

function Cursor:fail(msg)
	if not self.err then
		self.err = msg
	end
end

-- u16list reads the rest of c as 2-byte values.
local function u16list(c, field)
	local len = c:left()
	if len % 2 ~= 0 then
		return nil, sformat("%s is %d bytes long, it must be a whole number of 2-byte values", field, len)
	end
	local out = {}
	if len == 0 then
		return out
	end
	-- One call returns all the bytes; far cheaper than a read per value.
	local b = { sbyte(c.s, c.p, c.e) }
	for i = 1, len, 2 do
		out[#out + 1] = b[i] * 256 + b[i + 1]
	end
	return out
end

-- parse_extension fills h from one extension's content; only the
-- extensions JA4 reads are checked, as in the Go reference.
local function parse_extension(h, typ, c)
	local err
	if typ == 0x0000 then
		-- Only presence matters; the name is kept when readable.
		local list = c:vec16("server_name_list")
		while list and list:left() > 0 and not list.err do
			local kind = list:u8("name_type")
			local name = list:vec16("host_name")
			if name and kind == 0 then
				h.server_name = c.s:sub(name.p, name.e)
				break
			end
		end
		return nil
	elseif typ == 0x0010 then
		local list = c:vec16("ALPN protocol_name_list")
		if not c.err and c:left() ~= 0 then
			c:fail(sformat("ALPN extension has %d bytes after its protocol list", c:left()))
		end
		h.alpn = {}
		while list and list:left() > 0 and not list.err do
			local p = list:vec8("ALPN protocol name")
			if p then
				h.alpn[#h.alpn + 1] = c.s:sub(p.p, p.e)
			end
		end
		if list and list.err then
			return list.err
		end
	elseif typ == 0x002b then
		local list = c:vec8("supported_versions list")
		if not c.err and c:left() ~= 0 then
			c:fail(sformat("supported_versions extension has %d bytes after its list", c:left()))
		end
		if not c.err then
			h.supported_versions, err = u16list(list, "supported_versions list")
		end
	elseif typ == 0x000d then
		local list = c:vec16("signature_algorithms list")
		if not c.err and c:left() ~= 0 then
			c:fail(sformat("signature_algorithms extension has %d bytes after its list", c:left()))
		end
		if not c.err then
			h.sig_algs, err = u16list(list, "signature_algorithms list")
		end
	end
	return c.err or err
end

-- parse returns a table describing the ClientHello in raw, or nil, an error
-- message and, for input that is only cut short, the total bytes needed.
-- Fields: legacy_version, ciphers, extensions (wire order, GREASE kept),
-- supported_versions (nil when the extension is absent), sig_algs, alpn,
-- server_name, wire_len.
function ja4.parse(raw)
	local body, wire_len, need = reassemble(raw)
	if not body then
		return nil, wire_len, need
	end
	local h = { ciphers = {}, extensions = {}, sig_algs = {}, wire_len = wire_len }
	local r = cursor(body, 1, #body)
	h.legacy_version = r:u16("legacy_version")
	r:take(32, "random")
	local sid = r:vec8("legacy_session_id")
	if sid and sid:left() > 32 then
		r:fail(sformat("legacy_session_id is %d bytes, at most 32 are valid", sid:left()))
	end
	local suites = r:vec16("cipher_suites")
	r:vec8("legacy_compression_methods")
	if r.err then
		return nil, r.err
	end
	local err
	h.ciphers, err = u16list(suites, "cipher_suites")
	if not h.ciphers then
		return nil, err
	end
	if r:left() == 0 then
		-- Pre-TLS 1.2 clients may omit the extensions block entirely.
		return h
	end
	local exts = r:vec16("extensions")
	if r.err then
		return nil, r.err
	end
	if r:left() ~= 0 then
		return nil, sformat("%d bytes follow the extensions block inside the ClientHello; the block must end the message", r:left())
	end
	local seen = {}
	while exts:left() > 0 and not exts.err do
		local typ = exts:u16("extension type")
		local data = exts:vec16("extension data")
		if exts.err then
			exts.err = exts.err:gsub("^extension data", sformat("extension 0x%04x data", typ))
		end
		if exts.err then
			break
		end
		h.extensions[#h.extensions + 1] = typ
		-- Duplicates are forbidden (RFC 8446 §4.2); only the first one
		-- contributes values, as a server would act on it.
		if not seen[typ] then
			seen[typ] = true
			err = parse_extension(h, typ, data)
			if err then
				return nil, err
			end
		end
	end
	if exts.err then
		return nil, exts.err
	end
	return h
end

---------------------------------------------------------------------------
-- Fingerprint rendering.
---------------------------------------------------------------------------

local VERSION_CODES = {
	[0x0304] = "13", [0x0303] = "12", [0x0302] = "11", [0x0301] = "10",
	[0x0300] = "s3", [0x0002] = "s2",
	[0xfeff] = "d1", [0xfefd] = "d2", [0xfefc] = "d3",
}

-- An empty list is written as zeros instead of the hash of nothing, so a
-- reader sees at once that the field had no values.
local EMPTY_HASH = "000000000000"

-- is_grease reports RFC 8701 GREASE values (0x0a0a, 0x1a1a, ... 0xfafa).
local function is_grease(v)
	return (v >> 8) == (v & 0xff) and (v & 0x0f) == 0x0a
end
ja4.is_grease = is_grease

local function without_grease(list)
	local out = {}
	for _, v in ipairs(list) do
		if not is_grease(v) then
			out[#out + 1] = v
		end
	end
	return out
end

-- HEX4 memoises "%04x" of the 16-bit values seen: the same few dozen
-- cipher, extension and algorithm codes recur on every connection, and the
-- Lua state lives as long as the HAProxy thread.
local HEX4 = setmetatable({}, { __index = function(t, v)
	local h = sformat("%04x", v)
	t[v] = h
	return h
end })

local function hex_list(list)
	local parts = {}
	for i, v in ipairs(list) do
		parts[i] = HEX4[v]
	end
	return tconcat(parts, ",")
end

local function sorted(list)
	local out = table.move(list, 1, #list, 1, {})
	tsort(out)
	return out
end

local function is_alnum(c)
	return (c >= 0x30 and c <= 0x39) or (c >= 0x41 and c <= 0x5a) or (c >= 0x61 and c <= 0x7a)
end

-- alpn_code: first and last character of the first offered ALPN value, or
-- the first and last hex digit of the value when either end is not ASCII
-- alphanumeric; "00" when there is none.
local function alpn_code(alpn)
	local v = alpn and alpn[1]
	if v == nil or #v == 0 then
		return "00"
	end
	local first, last = sbyte(v, 1), sbyte(v, #v)
	if is_alnum(first) and is_alnum(last) then
		return string.char(first, last)
	end
	return sformat("%x%x", first >> 4, last & 0x0f)
end

local function version_code(h)
	local v = h.legacy_version
	if h.supported_versions then
		local best
		for _, sv in ipairs(without_grease(h.supported_versions)) do
			if best == nil or sv > best then
				best = sv
			end
		end
		v = best or v
	end
	return VERSION_CODES[v] or "00"
end

-- render returns ja4, ja4_r, ja4_o, ja4_ro for a parsed hello. sha is an
-- optional function returning the lower-case hex SHA-256 of a string. With
-- short set only ja4 and ja4_r are made: what the gateway logs, for two
-- hashes instead of four on every connection.
function ja4.render(h, sha, short)
	sha = sha or sha256_hex
	local ciphers = without_grease(h.ciphers)
	local exts = without_grease(h.extensions)
	local sigs = without_grease(h.sig_algs)

	local has_sni = false
	-- The sorted extension list drops SNI and ALPN: part a already holds
	-- them, and dropping them keeps part c stable across destinations.
	local exts_trimmed = {}
	for _, e in ipairs(exts) do
		if e == 0x0000 then
			has_sni = true
		end
		if e ~= 0x0000 and e ~= 0x0010 then
			exts_trimmed[#exts_trimmed + 1] = e
		end
	end
	local prefix = sformat("t%s%s%02d%02d%s", version_code(h), has_sni and "d" or "i",
		math.min(#ciphers, 99), math.min(#exts, 99), alpn_code(h.alpn))

	local sig_list = hex_list(sigs)
	local function part_c(ext_list)
		if #sigs == 0 then
			return ext_list
		end
		return ext_list .. "_" .. sig_list
	end
	local function hash12(s, entries)
		if entries == 0 then
			return EMPTY_HASH
		end
		return sha(s):sub(1, 12)
	end
	local raw_b, raw_c = hex_list(sorted(ciphers)), part_c(hex_list(sorted(exts_trimmed)))
	if short then
		return prefix .. "_" .. hash12(raw_b, #ciphers) .. "_" .. hash12(raw_c, #exts_trimmed),
			prefix .. "_" .. raw_b .. "_" .. raw_c
	end
	local raw_bo, raw_co = hex_list(ciphers), part_c(hex_list(exts))
	return prefix .. "_" .. hash12(raw_b, #ciphers) .. "_" .. hash12(raw_c, #exts_trimmed),
		prefix .. "_" .. raw_b .. "_" .. raw_c,
		prefix .. "_" .. hash12(raw_bo, #ciphers) .. "_" .. hash12(raw_co, #exts),
		prefix .. "_" .. raw_bo .. "_" .. raw_co
end

-- fingerprint parses raw ClientHello bytes and returns ja4, ja4_r, ja4_o,
-- ja4_ro (only ja4, ja4_r with short); or nil, an error message and (when
-- the input is only cut short) the total input length needed.
function ja4.fingerprint(raw, sha, short)
	local h, err, need = ja4.parse(raw)
	if not h then
		return nil, err, need
	end
	return ja4.render(h, sha, short)
end

---------------------------------------------------------------------------
-- HAProxy glue.
---------------------------------------------------------------------------

-- At most this many times the action waits for more of a hello that is
-- still incomplete. req.ssl_hello_type is 1 once the handshake length's worth
-- of bytes is buffered, but a hello split over several records is that many
-- record headers longer, and each wait asks for the end of the next record.
-- Real clients use one or two records; the bound stops a client that sends
-- tiny records from making the action re-parse thousands of times.
local MAX_WAITS = 16

-- haproxy_sha returns a sha function using HAProxy's sha2 and hex
-- converters (OpenSSL, in C) and falling back to pure Lua when they are
-- missing, e.g. in a build without OpenSSL.
local function haproxy_sha(txn)
	return function(s)
		local ok, digest = pcall(function()
			return txn.c:hex(txn.c:sha2(s, 256))
		end)
		if ok and type(digest) == "string" and #digest == 64 then
			return digest:lower()
		end
		return sha256_hex(s)
	end
end

local function action(txn)
	local current = txn:get_var("sess.ja4")
	if current ~= nil and current ~= ja4.UNPARSED then
		return -- computed once per session
	end
	-- Set the marker first: if anything below fails, even with a Lua
	-- error, the session still says that no fingerprint was made.
	txn:set_var("sess.ja4", ja4.UNPARSED)
	local chan = txn.req
	local data = chan:data(0) or ""
	local sha = haproxy_sha(txn)
	local fp, fp_r, err, need
	for attempt = 0, MAX_WAITS do
		local a, b, c = ja4.fingerprint(data, sha, true)
		if a then
			fp, fp_r = a, b
			break
		end
		err, need = b, c
		-- Only wait when the hello is merely incomplete and more bytes can
		-- still arrive and fit in the buffer.
		if attempt == MAX_WAITS or need == nil or chan:is_full() or (chan.may_recv and not chan:may_recv()) then
			break
		end
		-- Channel:data with a length beyond what is buffered yields until
		-- that much has arrived (bounded by the client timeout).
		data = chan:data(0, need)
		if data == nil then
			data = ""
			break
		end
	end
	if fp then
		txn:set_var("sess.ja4", fp)
		txn:set_var("sess.ja4_r", fp_r)
		return
	end
	core.Warning(sformat("ja4: no fingerprint for this connection (%d bytes buffered): %s", #data, tostring(err)))
end

if core ~= nil and core.register_action ~= nil then
	core.register_action("ja4", { "tcp-req" }, action, 0)
end

return ja4
