-- framerelay Bridge: lets framerelay read the timeline and place takes in DaVinci Resolve where
-- Resolve runs no Python script (the free edition from 21.1) or its Python cannot reach
-- framerelay (a Mac App Store build).
--
-- Start it once each time Resolve starts: Workspace > Scripts > framerelay Bridge. It then waits
-- for framerelay's requests (from the tray app or `framerelay resolve send|place --via bridge`)
-- until `framerelay resolve bridge --stop`, or until it is started again (the newest one wins).
--
-- How it talks: framerelay writes each request atomically to MAILBOX/request.lua; this script
-- loadfile()s it in an empty environment, performs it once, and answers in Fusion's preferences
-- (fusion:SetPrefs + fusion:SavePrefs), which framerelay reads. It needs nothing the sandbox of
-- free 21.1+ takes away (io, ffi, require, package, os.execute, bmd.readdir).
--
-- It makes the Resolve calls; framerelay decides what to call with (which clip, which frames,
-- which track) and checks what Resolve read back.

local MAILBOX = [==[@MAILBOX@]==]
local PLUGIN_VERSION = "@VERSION@"
local PROTOCOL = 1
local POLL_SECONDS = 0.1
local STALE_SECONDS = 120 -- a request older than this was given up by framerelay
local PREFS = "Global.Framerelay.Bridge"
local REQUEST = MAILBOX .. "/request.lua"

local resolve = resolve or (Resolve and Resolve())
local fusion = fusion or fu or (resolve and resolve:Fusion())

-- Errors ---------------------------------------------------------------------------------------

local function fail(message, hint)
    error({ message = message, hint = hint }, 0)
end

-- A call that some builds may lack: nil instead of an error.
local function optional(object, method, ...)
    local ok, value = pcall(function(...) return object[method](object, ...) end, ...)
    if ok then return value end
    return nil
end

-- JSON (answers) -------------------------------------------------------------------------------

local encode

local function encode_string(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        if c == '"' then return '\\"' end
        if c == "\\" then return "\\\\" end
        return string.format("\\u%04x", c:byte())
    end) .. '"'
end

local function is_array(t)
    local n = 0
    for _ in pairs(t) do n = n + 1 end
    for i = 1, n do
        if t[i] == nil then return false end
    end
    return true
end

encode = function(value)
    local kind = type(value)
    if value == nil then return "null" end
    if kind == "boolean" then return value and "true" or "false" end
    if kind == "number" then
        if value ~= value or value == math.huge or value == -math.huge then return "null" end
        if value == math.floor(value) and math.abs(value) < 2 ^ 53 then
            return string.format("%d", value)
        end
        return string.format("%.17g", value)
    end
    if kind == "string" then return encode_string(value) end
    if kind == "table" then
        local parts = {}
        if is_array(value) then
            for i = 1, #value do parts[i] = encode(value[i]) end
            return "[" .. table.concat(parts, ",") .. "]"
        end
        for k, v in pairs(value) do
            parts[#parts + 1] = encode_string(tostring(k)) .. ":" .. encode(v)
        end
        return "{" .. table.concat(parts, ",") .. "}"
    end
    return encode_string(tostring(value))
end

local function hex(s)
    return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

-- Resolve ---------------------------------------------------------------------------------------

local VERSION = resolve and resolve:GetVersion() or {}

local function at_least(major, minor, patch)
    local have = { tonumber(VERSION[1]) or 0, tonumber(VERSION[2]) or 0, tonumber(VERSION[3]) or 0 }
    local want = { major, minor or 0, patch or 0 }
    for i = 1, 3 do
        if have[i] ~= want[i] then return have[i] > want[i] end
    end
    return true
end

-- Documented from these versions (Resolve's scripting README, bisected).
local HAS_TRACK_INDEX = at_least(19, 0)       -- TimelineItem:GetTrackTypeAndIndex
local HAS_INSERT_TRACK = at_least(19, 0)      -- Timeline:AddTrack(type, {index = n})
local HAS_SOURCE_TIMES = at_least(19, 0)      -- TimelineItem:GetSourceStartTime/EndTime
local HAS_SELECTION = at_least(21, 0, 4)      -- Timeline:GetSelectedClips

local function list(t)
    -- Resolve hands lists to Lua as tables keyed 1..n (or nil).
    local out = {}
    if type(t) ~= "table" then return out end
    for i = 1, #t do out[i] = t[i] end
    if #out == 0 then
        for _, v in pairs(t) do out[#out + 1] = v end
    end
    return out
end

local function current()
    local manager = resolve:GetProjectManager()
    local project = manager and manager:GetCurrentProject()
    if not project then fail("no project is open in Resolve.", "Open your project, then try again.") end
    local timeline = project:GetCurrentTimeline()
    if not timeline then
        fail("no timeline is open in Resolve.", "Open the timeline with your clip, then try again.")
    end
    return project, timeline, project:GetMediaPool()
end

local function media_facts(mpi)
    if not mpi then return nil end
    local props = mpi:GetClipProperty() or {}
    return {
        path = props["File Path"],
        fps = props["FPS"],
        frames = props["Frames"],
        type = props["Type"],
        name = props["Clip Name"] or mpi:GetName(),
        resolution = props["Resolution"],
        start_tc = props["Start TC"],
    }
end

local function track_of(timeline, item)
    if HAS_TRACK_INDEX then
        local where = item:GetTrackTypeAndIndex()
        if where and where[1] == "video" then return tonumber(where[2]) end
        if where and where[1] then return nil end
    end
    local id = item:GetUniqueId()
    for index = 1, timeline:GetTrackCount("video") do
        for _, other in ipairs(list(timeline:GetItemListInTrack("video", index))) do
            if other:GetUniqueId() == id then return index end
        end
    end
    return nil
end

local function item_facts(timeline, item, track)
    track = track or track_of(timeline, item)
    local facts = {
        id = item:GetUniqueId(),
        name = item:GetName(),
        start = item:GetStart(),
        ["end"] = item:GetEnd(),
        duration = item:GetDuration(),
        left_offset = item:GetLeftOffset(),
        track = track,
        track_enabled = track and timeline:GetIsTrackEnabled("video", track) or false,
        media = media_facts(item:GetMediaPoolItem()),
    }
    if HAS_SOURCE_TIMES then
        facts.source_start_time = item:GetSourceStartTime()
        facts.source_end_time = item:GetSourceEndTime()
    end
    return facts
end

local function find_bin(media_pool, name, create)
    local root = media_pool:GetRootFolder()
    for _, folder in ipairs(list(root:GetSubFolderList())) do
        if folder:GetName() == name then return folder end
    end
    if create then
        local folder = media_pool:AddSubFolder(root, name)
        if not folder then fail("Resolve could not create the bin '" .. name .. "'.") end
        return folder
    end
    return nil
end

local function matches(path, key)
    if type(path) ~= "string" then return false end
    if key.prefix then return path:sub(1, #key.path) == key.path end
    return path == key.path
end

local function find_take(bin, key)
    if not bin then return nil end
    for _, clip in ipairs(list(bin:GetClipList())) do
        if matches(clip:GetClipProperty("File Path"), key) then return clip end
    end
    return nil
end

-- Operations (the same as framerelay_resolve.live.LiveHost) ------------------------------------

local ops = {}

function ops.describe()
    local project, timeline = current()
    local tracks = {}
    for index = 1, timeline:GetTrackCount("video") do
        tracks[index] = {
            index = index,
            enabled = timeline:GetIsTrackEnabled("video", index),
            locked = timeline:GetIsTrackLocked("video", index),
        }
    end
    return {
        product = resolve:GetProductName(),
        version = VERSION,
        bridge = { version = PLUGIN_VERSION, protocol = PROTOCOL },
        project = { name = project:GetName(), id = optional(project, "GetUniqueId") },
        timeline = {
            name = timeline:GetName(),
            id = timeline:GetUniqueId(),
            start_frame = timeline:GetStartFrame(),
            start_timecode = timeline:GetStartTimecode(),
            current_timecode = timeline:GetCurrentTimecode(),
            frame_rate = timeline:GetSetting("timelineFrameRate"),
            drop_frame = timeline:GetSetting("timelineDropFrameTimecode"),
            video_tracks = tracks,
        },
    }
end

function ops.items_at(args)
    local _, timeline = current()
    local frame = tonumber(args.frame)
    local found = {}
    for index = timeline:GetTrackCount("video"), 1, -1 do
        for _, item in ipairs(list(timeline:GetItemListInTrack("video", index))) do
            if item:GetStart() <= frame and frame < item:GetEnd() then
                found[#found + 1] = item_facts(timeline, item, index)
            end
        end
    end
    return { items = found }
end

function ops.selected()
    if not HAS_SELECTION then return { supported = false, items = {} } end
    local _, timeline = current()
    local found = {}
    for _, item in ipairs(list(timeline:GetSelectedClips())) do
        local track = track_of(timeline, item)
        if track then found[#found + 1] = item_facts(timeline, item, track) end
    end
    return { supported = true, items = found }
end

function ops.current_item()
    local _, timeline = current()
    local item = timeline:GetCurrentVideoItem()
    return { item = item and item_facts(timeline, item) or nil }
end

function ops.find_item(args)
    local _, timeline = current()
    for index = 1, timeline:GetTrackCount("video") do
        for _, item in ipairs(list(timeline:GetItemListInTrack("video", index))) do
            if item:GetUniqueId() == args.id then return { item = item_facts(timeline, item, index) } end
        end
    end
    return { item = nil }
end

function ops.takes_status(args)
    local _, timeline, media_pool = current()
    local bin = find_bin(media_pool, args.bin, false)
    local in_bin, on_timeline = {}, {}
    local placed = {}
    for index = 1, timeline:GetTrackCount("video") do
        for _, item in ipairs(list(timeline:GetItemListInTrack("video", index))) do
            local mpi = item:GetMediaPoolItem()
            if mpi then placed[#placed + 1] = mpi:GetClipProperty("File Path") end
        end
    end
    for _, key in ipairs(list(args.keys)) do
        if find_take(bin, key) then in_bin[#in_bin + 1] = key.path end
        for _, path in ipairs(placed) do
            if matches(path, key) then
                on_timeline[#on_timeline + 1] = key.path
                break
            end
        end
    end
    return { in_bin = in_bin, on_timeline = on_timeline }
end

function ops.import_take(args)
    local _, _, media_pool = current()
    local bin = find_bin(media_pool, args.bin, true)
    local clip = find_take(bin, args.key)
    local existing = clip ~= nil
    if not clip then
        -- ImportMedia has no destination: it always imports into the current folder.
        local previous = media_pool:GetCurrentFolder()
        media_pool:SetCurrentFolder(bin)
        local request
        if args.sequence then
            request = { { FilePath = args.sequence.pattern, StartIndex = args.sequence.first,
                          EndIndex = args.sequence.last } }
        else
            request = { args.path }
        end
        local imported = list(media_pool:ImportMedia(request))
        if previous then media_pool:SetCurrentFolder(previous) end
        clip = imported[1]
        if not clip then
            fail("Resolve could not import " .. tostring(args.path) .. ".",
                 "Check that the file exists and that Resolve can read its format.")
        end
    end
    local facts = media_facts(clip)
    facts.existing = existing
    return facts
end

function ops.discard_take(args)
    local _, _, media_pool = current()
    local clip = find_take(find_bin(media_pool, args.bin, false), args.key)
    if not clip then return { removed = false } end
    return { removed = media_pool:DeleteClips({ clip }) and true or false }
end

function ops.place_take(args)
    local _, timeline, media_pool = current()
    local clip = find_take(find_bin(media_pool, args.bin, false), args.key)
    if not clip then fail("the take is not in the '" .. args.bin .. "' bin.") end
    local before = timeline:GetTrackCount("video")
    local index
    if args.track_mode == "insert" then
        if not HAS_INSERT_TRACK then fail("this Resolve cannot insert a track (19.0 or newer can).") end
        timeline:AddTrack("video", { index = args.insert_index })
        index = args.insert_index
    else
        timeline:AddTrack("video")
        index = before + 1
    end
    if timeline:GetTrackCount("video") ~= before + 1 then
        fail("Resolve did not add a video track.", "Check that the timeline is not locked.")
    end
    if args.track_name then timeline:SetTrackName("video", index, args.track_name) end
    local placed = list(media_pool:AppendToTimeline({ {
        mediaPoolItem = clip,
        startFrame = args.start_frame,
        endFrame = args.end_frame, -- exclusive
        trackIndex = index,
        recordFrame = args.record_frame, -- absolute
        mediaType = 1,
    } }))
    local item = placed[1]
    local on_track = list(timeline:GetItemListInTrack("video", index))
    local readback = { items_on_track = #on_track, on_track = false }
    if item then
        readback.id = item:GetUniqueId()
        readback.start = item:GetStart()
        readback["end"] = item:GetEnd()
        readback.duration = item:GetDuration()
        readback.left_offset = item:GetLeftOffset()
        if HAS_TRACK_INDEX then
            local where = item:GetTrackTypeAndIndex()
            readback.track = where and tonumber(where[2])
        end
        for _, other in ipairs(on_track) do
            if readback.id and readback.id ~= "" and other:GetUniqueId() == readback.id then
                readback.on_track = true
                if not HAS_TRACK_INDEX then readback.track = index end
            end
        end
    end
    local removed_stray = false
    if item and readback.id and readback.id ~= "" and not readback.on_track then
        -- It landed somewhere else (a track index beyond the count lands on V1): take it back.
        removed_stray = timeline:DeleteClips({ item }, false) and true or false
    end
    local removed_track = false
    if #on_track == 0 then
        removed_track = timeline:DeleteTrack("video", index) and true or false
    end
    return { placed = readback.on_track, track = index, readback = readback,
             removed_track = removed_track, removed_stray = removed_stray }
end

-- The loop ---------------------------------------------------------------------------------------

local running = true

function ops.quit()
    running = false
    return {}
end

function ops.ping()
    return { product = resolve:GetProductName(), version = VERSION,
             bridge = { version = PLUGIN_VERSION, protocol = PROTOCOL } }
end

local function read_request()
    local chunk = loadfile(REQUEST)
    if not chunk then return nil end
    if setfenv then setfenv(chunk, {}) end -- the request is data: it can call nothing
    local ok, request = pcall(chunk)
    if ok and type(request) == "table" and type(request.id) == "string" then return request end
    return nil
end

local function perform(request)
    local op = ops[request.op]
    if request.v ~= PROTOCOL then
        return { id = request.id, ok = false, error = {
            message = "this framerelay Bridge speaks protocol " .. PROTOCOL .. ", the request "
                .. tostring(request.v) .. ".",
            hint = "Run `framerelay install-resolve` again and restart Resolve." } }
    end
    if not op then
        return { id = request.id, ok = false,
                 error = { message = "unknown request '" .. tostring(request.op) .. "'." } }
    end
    local ok, result = pcall(op, request.args or {})
    if ok then return { id = request.id, ok = true, result = result } end
    if type(result) == "table" then
        return { id = request.id, ok = false, error = { message = result.message, hint = result.hint } }
    end
    return { id = request.id, ok = false, error = { message = "Resolve call failed: " .. tostring(result) } }
end

local function now()
    if os and os.time then return os.time() end
    return nil
end

local function main()
    if not resolve or not fusion then
        print("[framerelay] This script runs inside DaVinci Resolve (Workspace > Scripts).")
        return
    end
    if not (bmd and bmd.wait) then
        print("[framerelay] This Resolve has no bmd.wait; the bridge cannot wait for requests.")
        return
    end
    local session = tostring(now() or 0) .. "-" .. tostring({}):gsub("^table: ", "")
    local last_id = fusion:GetPrefs(PREFS .. ".LastId") or ""
    fusion:SetPrefs(PREFS .. ".State", "running")
    fusion:SetPrefs(PREFS .. ".Mailbox", MAILBOX)
    fusion:SetPrefs(PREFS .. ".Session", session)
    fusion:SetPrefs(PREFS .. ".Protocol", PROTOCOL)
    fusion:SavePrefs()
    print("[framerelay] Bridge " .. PLUGIN_VERSION .. " running; waiting for framerelay in " .. MAILBOX)
    while running do
        if fusion:GetPrefs(PREFS .. ".Session") ~= session then
            print("[framerelay] Another framerelay Bridge took over; this one stops.")
            return
        end
        local request = read_request()
        if request and request.id ~= last_id then
            last_id = request.id
            local answer
            local age = now() and tonumber(request.created) and now() - tonumber(request.created)
            if age and age > STALE_SECONDS then
                print("[framerelay] Skipped an old request (" .. tostring(request.op) .. ").")
                answer = { id = request.id, ok = false, error = { message = "the request expired." } }
            else
                answer = perform(request)
                if not answer.ok then
                    print("[framerelay] " .. tostring(request.op) .. ": " .. tostring(answer.error.message))
                end
            end
            fusion:SetPrefs(PREFS .. ".LastId", request.id)
            fusion:SetPrefs(PREFS .. ".Response", hex(encode(answer)))
            fusion:SavePrefs()
        end
        if running then bmd.wait(POLL_SECONDS) end
    end
    fusion:SetPrefs(PREFS .. ".State", "stopped")
    fusion:SavePrefs()
    print("[framerelay] Bridge stopped.")
end

main()
