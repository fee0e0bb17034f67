-- Runs a Resolve Lua script in real Lua 5.1 against the fake Resolve of the Python test process.
--
--   lua5.1 harness.lua SCRIPT.lua      (stdin/stdout: one message a line, to and from Python)
--
-- The script gets what Resolve's menu scripts get on free 21.1+, and no more: `resolve`,
-- `fusion`/`fu`, `Resolve()`, `bmd.wait`, and Lua's base library without io, ffi, require,
-- package, dofile, os.execute (os keeps only time, clock, date and difftime) or bmd.readdir.
-- Every Resolve object is a proxy: `obj:Method(...)` is sent to Python, where the fake answers;
-- a method called with "." instead of ":" is an error, as it is in Resolve.

local script = arg[1]
local input, output = io.stdin, io.stdout
local handle_of = setmetatable({}, { __mode = "k" })
local proxies = {}

local encode

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        if c == '"' then return '\\"' end
        if c == "\\" then return "\\\\" end
        return string.format("\\u%04x", c:byte())
    end) .. '"'
end

encode = function(v)
    local kind = type(v)
    if v == nil then return "null" end
    if kind == "boolean" then return tostring(v) end
    if kind == "number" then
        if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return string.format("%d", v) end
        return string.format("%.17g", v)
    end
    if kind == "string" then return encode_string(v) end
    if kind == "table" then
        if handle_of[v] then return '{"__handle":' .. handle_of[v] .. "}" end
        local n, count = #v, 0
        for _ in pairs(v) do count = count + 1 end
        local parts = {}
        if count == n then
            for i = 1, n do parts[i] = encode(v[i]) end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        for k, item in pairs(v) do parts[#parts + 1] = encode_string(tostring(k)) .. ":" .. encode(item) end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    error("cannot send a " .. kind .. " to Resolve")
end

local proxy

local function raise(message)
    error(message, 0)
end

local function exchange(message)
    output:write(encode(message), "\n")
    output:flush()
    local line = input:read("*l")
    if not line then os.exit(3) end
    local chunk = assert(loadstring(line))
    setfenv(chunk, { H = function(n) return proxy(n) end, E = raise })
    return chunk()
end

proxy = function(handle)
    if proxies[handle] then return proxies[handle] end
    local object = {}
    setmetatable(object, {
        __index = function(_, method)
            return function(self, ...)
                if self ~= object then
                    error("Resolve method " .. method .. " called with '.' instead of ':'", 2)
                end
                return exchange({ op = "call", handle = handle, method = method, args = { ... },
                                  n = select("#", ...) })
            end
        end,
        __newindex = function() error("Resolve objects take no fields", 2) end,
    })
    handle_of[object] = handle
    proxies[handle] = object
    return object
end

local sandbox = {}
for name, value in pairs(_G) do sandbox[name] = value end
for _, name in ipairs({ "io", "ffi", "require", "package", "dofile", "module", "arg", "debug" }) do
    sandbox[name] = nil
end
sandbox.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
sandbox.resolve = proxy(1)
sandbox.fusion = proxy(2)
sandbox.fu = sandbox.fusion
sandbox.Resolve = function() return sandbox.resolve end
sandbox.bmd = { wait = function(seconds) exchange({ op = "wait", seconds = seconds }) end }
sandbox.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    exchange({ op = "print", text = table.concat(parts, "\t") })
end
sandbox._G = sandbox

local chunk, load_error = loadfile(script)
if not chunk then
    exchange({ op = "exit", ok = false, error = load_error })
    return
end
setfenv(chunk, sandbox)
local ok, run_error = pcall(chunk)
exchange({ op = "exit", ok = ok, error = run_error and tostring(run_error) or nil })
