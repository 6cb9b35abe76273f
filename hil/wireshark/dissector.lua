-- The interpreter: walks GEN's tables (generated above), hand-written, shipped as is.
-- Packets come from `pumpemu capture export --pcapng` (hil/pcapng.py): link type
-- LINKTYPE_USER0 (147), each packet a 16-byte pseudo-header, the direction and source names,
-- then one frame, one noise run, one note's text or one run start's format tag.

local proto = Proto("pumpemu", "pumpemu pump programming protocol")

local bxor
if bit32 ~= nil then
  bxor = bit32.bxor
elseif bit ~= nil then
  bxor = bit.bxor
else
  bxor = load("return function(a, b) return a ~ b end")()
end

local KINDS = { [0] = "frame", [1] = "noise", [2] = "note", [3] = "capture" }
local SIZES = { u8 = 1, u16 = 2, u32 = 4, u64 = 8 }
local FTYPES = { u8 = ftypes.UINT8, u16 = ftypes.UINT16, u32 = ftypes.UINT32, u64 = ftypes.UINT64 }

local F = {}
local order = {}
local function field(abbrev, label, ftype, valuestring, fbase, mask)
  if F[abbrev] == nil then
    F[abbrev] = ProtoField.new(label, abbrev, ftype, valuestring, fbase, mask)
    order[#order + 1] = abbrev
  end
end

-- the pseudo-header and record kinds
field("pumpemu.record", "record", ftypes.STRING)
field("pumpemu.sim_ms", "sim_ms", ftypes.UINT64, nil, base.DEC)
field("pumpemu.direction", "direction", ftypes.STRING)
field("pumpemu.source", "source", ftypes.STRING)
field("pumpemu.noise", "noise", ftypes.BYTES)
field("pumpemu.note", "note", ftypes.STRING)
field("pumpemu.capture_format", "capture format", ftypes.STRING)
-- the frame header
local opcode_names = {}
for value, entry in pairs(GEN.opcodes) do opcode_names[value] = entry[1] end
field("pumpemu.sync", "sync", ftypes.BYTES)
field("pumpemu.version", "version", ftypes.UINT8, nil, base.DEC)
field("pumpemu.flags", "flags", ftypes.UINT8, nil, base.HEX)
field("pumpemu.flags.reply", "REPLY", ftypes.BOOLEAN, nil, 8, GEN.flag_reply)
field("pumpemu.flags.sealed", "SEALED", ftypes.BOOLEAN, nil, 8, GEN.flag_sealed)
field("pumpemu.seq", "seq", ftypes.UINT32, nil, base.DEC)
field("pumpemu.ref", "ref", ftypes.UINT32, nil, base.DEC)
field("pumpemu.opcode", "opcode", ftypes.UINT8, opcode_names, base.HEX)
field("pumpemu.opcode.name", "opcode name", ftypes.STRING)
field("pumpemu.length", "length", ftypes.UINT16, nil, base.DEC)
field("pumpemu.crc", "crc", ftypes.UINT16, nil, base.HEX)
field("pumpemu.crc.computed", "computed crc", ftypes.UINT16, nil, base.HEX)
field("pumpemu.crc.status", "crc status", ftypes.STRING)
field("pumpemu.sealed", "sealed", ftypes.BOOLEAN)
field("pumpemu.ciphertext", "ciphertext", ftypes.BYTES)
field("pumpemu.ciphertext_len", "ciphertext length", ftypes.UINT16, nil, base.DEC)
field("pumpemu.tag", "tag", ftypes.BYTES)
field("pumpemu.tag_len", "tag length", ftypes.UINT16, nil, base.DEC)
field("pumpemu.message", "message", ftypes.STRING)
field("pumpemu.error", "error", ftypes.STRING)

-- payload fields, from GEN.layouts
local function declare(fields)
  for _, f in ipairs(fields) do
    if SIZES[f.wire] ~= nil then
      local fbase = base.DEC
      if f.kind == "enum_set" then fbase = base.HEX end
      field(f.abbrev, f.name, FTYPES[f.wire], nil, fbase)
      if f.kind == "enum" then
        field(f.abbrev .. ".name", f.name .. " name", ftypes.STRING)
      elseif f.kind == "enum_set" then
        field(f.abbrev .. ".name", f.name .. " member", ftypes.STRING)
      end
    elseif f.wire == "bytes" then
      field(f.abbrev, f.name, ftypes.BYTES)
    elseif f.wire == "text" then
      field(f.abbrev, f.name, ftypes.STRING)
    elseif f.wire == "record" then
      field(f.abbrev, f.name, ftypes.STRING)
      declare(f.fields)
    elseif f.wire == "optional" then
      field(f.abbrev .. "_present", f.name .. "_present", ftypes.UINT8, nil, base.DEC)
      field(f.abbrev, f.name, ftypes.STRING)
      declare(f.fields)
    elseif f.wire == "list" then
      field(f.abbrev, f.name .. " count", ftypes.UINT8, nil, base.DEC)
      field(f.abbrev .. ".record", f.record_type, ftypes.STRING)
      declare(f.fields)
    end
  end
end
for _, fields in pairs(GEN.layouts) do declare(fields) end

local list = {}
for _, abbrev in ipairs(order) do list[#list + 1] = F[abbrev] end
proto.fields = list

local ex_crc = ProtoExpert.new("pumpemu.crc.bad", "bad CRC", expert.group.CHECKSUM, expert.severity.ERROR)
local ex_malformed = ProtoExpert.new("pumpemu.malformed", "payload does not decode", expert.group.MALFORMED, expert.severity.ERROR)
local ex_noise = ProtoExpert.new("pumpemu.noise.seen", "noise: bytes in no frame", expert.group.PROTOCOL, expert.severity.WARN)
local ex_sealed = ProtoExpert.new("pumpemu.sealed.closed", "sealed: open it with pumpemu decode --keys", expert.group.COMMENTS_GROUP, expert.severity.CHAT)
proto.experts = { ex_crc, ex_malformed, ex_noise, ex_sealed }

local function crc16(tvb, offset, length)
  local crc = 0xFFFF
  for i = offset, offset + length - 1 do
    local index = bxor(math.floor(crc / 256), tvb(i, 1):uint())
    crc = bxor((crc % 256) * 256, GEN.crc_table[index + 1])
  end
  return crc
end

local function is_set(value, bit)
  return math.floor(value / 2 ^ bit) % 2 == 1
end

-- Payload walking. state = { limit = end of payload, err = first problem or nil }.
local dissect_fields

local function need(state, at, n, path)
  if state.err ~= nil then return false end
  if at + n > state.limit then
    state.err = path .. ": the payload ends before this field"
    return false
  end
  return true
end

local function record_item(tree, tvb, abbrev, at, state, label)
  local length = 0
  if at < state.limit then length = 1 end
  return tree:add(F[abbrev], tvb(at, length), label)
end

local function dissect_field(f, tvb, at, tree, state)
  local n = SIZES[f.wire]
  if n ~= nil then
    if not need(state, at, n, f.path) then return at end
    local range = tvb(at, n)
    local item = tree:add_le(F[f.abbrev], range)
    if f.kind == "enum" then
      local value = range:le_uint()
      local name = GEN.enums[f.enum][value]
      if name == nil then
        state.err = f.path .. ": " .. value .. " is not a " .. f.enum
      else
        item:add(F[f.abbrev .. ".name"], range, name):set_generated()
        item:append_text(" (" .. name .. ")")
      end
    elseif f.kind == "enum_set" then
      local value = range:le_uint()
      for bit = 0, n * 8 - 1 do
        if is_set(value, bit) then
          local name = GEN.enums[f.enum][bit]
          if name == nil then
            state.err = f.path .. ".bit" .. bit .. ": " .. bit .. " is not a " .. f.enum
          else
            item:add(F[f.abbrev .. ".name"], range, name):set_generated()
          end
        end
      end
    elseif f.kind == "bool" then
      local value = range:le_uint()
      if value > 1 then state.err = f.path .. ": " .. value .. " is not 0 or 1" end
    end
    return at + n
  elseif f.wire == "bytes" then
    if not need(state, at, f.size, f.path) then return at end
    tree:add(F[f.abbrev], tvb(at, f.size))
    return at + f.size
  elseif f.wire == "text" then
    if not need(state, at, 1, f.path) then return at end
    local count = tvb(at, 1):uint()
    if not need(state, at + 1, count, f.path) then return at end
    local text = ""
    if count > 0 then text = tvb(at + 1, count):string() end
    tree:add(F[f.abbrev], tvb(at, 1 + count), text)
    return at + 1 + count
  elseif f.wire == "record" then
    local sub = record_item(tree, tvb, f.abbrev, at, state, f.record_type)
    local after = dissect_fields(f.fields, tvb, at, sub, state)
    sub:set_len(after - at)
    return after
  elseif f.wire == "optional" then
    if not need(state, at, 1, f.path .. "_present") then return at end
    local present = tvb(at, 1):uint()
    tree:add(F[f.abbrev .. "_present"], tvb(at, 1))
    if present == 0 then return at + 1 end
    if present ~= 1 then
      state.err = f.path .. "_present: presence flag " .. present .. " is not 0 or 1"
      return at + 1
    end
    local sub = record_item(tree, tvb, f.abbrev, at + 1, state, f.record_type)
    local after = dissect_fields(f.fields, tvb, at + 1, sub, state)
    sub:set_len(after - at - 1)
    return after
  elseif f.wire == "list" then
    if not need(state, at, 1, f.path) then return at end
    local count = tvb(at, 1):uint()
    local head = tree:add(F[f.abbrev], tvb(at, 1))
    local start = at
    at = at + 1
    for i = 0, count - 1 do
      if state.err ~= nil then break end
      local sub = record_item(head, tvb, f.abbrev .. ".record", at, state, f.record_type)
      sub:append_text(" [" .. i .. "]")
      local after = dissect_fields(f.fields, tvb, at, sub, state)
      sub:set_len(after - at)
      at = after
    end
    head:set_len(at - start)
    return at
  end
  state.err = f.path .. ": unknown wire type " .. f.wire
  return at
end

dissect_fields = function(fields, tvb, at, tree, state)
  for _, f in ipairs(fields) do
    if state.err ~= nil then return at end
    at = dissect_field(f, tvb, at, tree, state)
  end
  return at
end

local function dissect_frame(tvb, pinfo, tree, at, direction)
  local total = tvb:len() - at
  local root = tree:add(proto, tvb(at, total), "pumpemu frame")
  if total < GEN.header_len + GEN.crc_len then
    root:add(F["pumpemu.error"], tvb(at, total), "shorter than a header and a CRC")
    return
  end
  root:add(F["pumpemu.sync"], tvb(at, 2))
  root:add(F["pumpemu.version"], tvb(at + 2, 1))
  local flags = tvb(at + 3, 1):uint()
  local flags_item = root:add(F["pumpemu.flags"], tvb(at + 3, 1))
  flags_item:add(F["pumpemu.flags.reply"], tvb(at + 3, 1))
  flags_item:add(F["pumpemu.flags.sealed"], tvb(at + 3, 1))
  local seq = tvb(at + 4, 4):le_uint()
  root:add_le(F["pumpemu.seq"], tvb(at + 4, 4))
  root:add_le(F["pumpemu.ref"], tvb(at + 8, 4))
  local opcode = tvb(at + 12, 1):uint()
  local entry = GEN.opcodes[opcode]
  local opcode_name = string.format("0x%02x", opcode)
  if entry ~= nil then opcode_name = entry[1] end
  local opcode_item = root:add(F["pumpemu.opcode"], tvb(at + 12, 1))
  opcode_item:add(F["pumpemu.opcode.name"], tvb(at + 12, 1), opcode_name):set_generated()
  local length = tvb(at + 13, 2):le_uint()
  root:add_le(F["pumpemu.length"], tvb(at + 13, 2))
  local body_at = at + GEN.header_len
  if GEN.header_len + length + GEN.crc_len ~= total then
    root:add(F["pumpemu.error"], tvb(at, total), "LENGTH does not match the frame's size")
    return
  end
  local crc_at = body_at + length
  local crc_item = root:add_le(F["pumpemu.crc"], tvb(crc_at, 2))
  local computed = crc16(tvb, at + 2, GEN.header_len - 2 + length)
  local sent = tvb(crc_at, 2):le_uint()
  crc_item:add(F["pumpemu.crc.computed"], tvb(crc_at, 2), computed):set_generated()
  if computed == sent then
    crc_item:add(F["pumpemu.crc.status"], tvb(crc_at, 2), "good"):set_generated()
  else
    crc_item:add(F["pumpemu.crc.status"], tvb(crc_at, 2), "bad"):set_generated()
    crc_item:add_tvb_expert_info(ex_crc, tvb(crc_at, 2))
  end
  local sealed = is_set(flags, 1)
  root:add(F["pumpemu.sealed"], tvb(at + 3, 1), sealed):set_generated()
  local info = string.format("%s %s seq=%d", direction, opcode_name, seq)
  if sealed then
    local cipher_len = length - GEN.tag_len
    if cipher_len < 0 then
      root:add(F["pumpemu.error"], tvb(body_at, length), "sealed body shorter than a tag")
    else
      if cipher_len > 0 then root:add(F["pumpemu.ciphertext"], tvb(body_at, cipher_len)) end
      root:add(F["pumpemu.ciphertext_len"], tvb(body_at, length), cipher_len):set_generated()
      root:add(F["pumpemu.tag"], tvb(body_at + cipher_len, GEN.tag_len))
      root:add(F["pumpemu.tag_len"], tvb(body_at, length), GEN.tag_len):set_generated()
    end
    root:add_tvb_expert_info(ex_sealed, tvb(at + 3, 1))
    pinfo.cols.info = info .. " [sealed]"
    return
  end
  if entry == nil then
    root:add(F["pumpemu.error"], tvb(at + 12, 1), "unknown opcode " .. opcode_name)
    pinfo.cols.info = info .. " [unknown opcode]"
    return
  end
  local payload_at = body_at
  local state = { limit = body_at + length, err = nil }
  local message
  if length > 0 then
    message = root:add(F["pumpemu.message"], tvb(body_at, length), entry[2])
  else
    message = root:add(F["pumpemu.message"], tvb(at + 12, 1), entry[2])
  end
  local after = dissect_fields(GEN.layouts[opcode], tvb, payload_at, message, state)
  if state.err == nil and after ~= state.limit then
    state.err = string.format("payload: %d bytes, %d of them trailing", length, state.limit - after)
  end
  if state.err ~= nil then
    local item = root:add(F["pumpemu.error"], tvb(body_at, length), state.err)
    item:add_tvb_expert_info(ex_malformed, tvb(body_at, length))
    pinfo.cols.info = info .. " [" .. state.err .. "]"
  else
    pinfo.cols.info = info .. " " .. entry[2]
  end
end

function proto.dissector(tvb, pinfo, tree)
  pinfo.cols.protocol = "pumpemu"
  if tvb:len() < 16 then
    tree:add(proto, tvb(), "pumpemu: packet shorter than the pseudo-header")
    return
  end
  local kind = tvb(1, 1):uint()
  local has_sim = is_set(tvb(2, 1):uint(), 0)
  local dlen = tvb(3, 1):uint()
  local slen = tvb(4, 1):uint()
  local at = 16 + dlen + slen
  local head = tree:add(proto, tvb(0, at), "pumpemu capture record")
  local kind_name = KINDS[kind] or string.format("kind %d", kind)
  head:add(F["pumpemu.record"], tvb(1, 1), kind_name)
  if has_sim then head:add_le(F["pumpemu.sim_ms"], tvb(8, 8)) end
  local direction = ""
  if dlen > 0 then
    direction = tvb(16, dlen):string()
    head:add(F["pumpemu.direction"], tvb(16, dlen))
  end
  if slen > 0 then head:add(F["pumpemu.source"], tvb(16 + dlen, slen)) end
  local rest = tvb:len() - at
  if kind == 0 then
    dissect_frame(tvb, pinfo, tree, at, direction)
  else
    local body = head
    if rest > 0 then body = tree:add(proto, tvb(at, rest), "pumpemu " .. kind_name) end
    local text = ""
    if rest > 0 and kind ~= 1 then text = tvb(at, rest):string() end
    if kind == 1 then
      if rest > 0 then
        local item = body:add(F["pumpemu.noise"], tvb(at, rest))
        item:add_tvb_expert_info(ex_noise, tvb(at, rest))
      end
      pinfo.cols.info = string.format("%s noise, %d bytes", direction, rest)
    elseif kind == 2 then
      body:add(F["pumpemu.note"], text)
      pinfo.cols.info = "note: " .. text
    else
      body:add(F["pumpemu.capture_format"], text)
      pinfo.cols.info = "capture run start, format " .. text
    end
  end
end

local encaps = wtap_encaps or wtap
DissectorTable.get("wtap_encap"):add(encaps.USER0, proto)
