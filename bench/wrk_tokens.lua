-- wrk script: round-robin over the access tokens given after "--", plus the JSON reporter.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)") or "./"
dofile(here .. "wrk_report.lua")
local tokens, counter = {}, 0
init = function(args)
  for i, t in ipairs(args) do tokens[i] = t end
end
request = function()
  counter = counter + 1
  return wrk.format(nil, nil, {["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1]})
end
