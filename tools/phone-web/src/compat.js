// The protocol version rule, the same as edge_agent/protocol.py (tests/unit/phone/test_protocol_compat.py runs both
// on the same cases): a device states one integer (DeviceInfo.protocol_version); this app understands the versions
// OLDEST_DEVICE_PROTOCOL..PROTOCOL_VERSION. A device outside that range is refused before any other call, in one
// line that says which side to update: a newer device -> update (reload) the app; an older one -> IT updates the device.
export const PROTOCOL_VERSION = 1;
export const OLDEST_DEVICE_PROTOCOL = 1;

export const UPDATE_APP = "update-app";
export const UPDATE_DEVICE = "update-device";

function parse(v) {
  if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  if (typeof v === "string" && /^\s*\d{1,9}\s*$/.test(v) && Number(v) > 0) return Number(v);
  return null;
}

// { usable, action, message }: message is what the clinician reads (one line), "" when usable.
export function deviceCompatibility(version, oldest = OLDEST_DEVICE_PROTOCOL, newest = PROTOCOL_VERSION) {
  const found = parse(version);
  if (found === null) {
    return { usable: false, action: UPDATE_DEVICE,
      message: "This room device runs older software that this app cannot use: tell IT to update the room device." };
  }
  if (found > newest) {
    return { usable: false, action: UPDATE_APP,
      message: `This room device has newer software (protocol ${found}) than this app understands (up to ${newest}): update the app — close it and open it again — then try again; if this stays, tell IT.` };
  }
  if (found < oldest) {
    return { usable: false, action: UPDATE_DEVICE,
      message: `This room device runs older software (protocol ${found}) than this app supports (from ${oldest}): tell IT to update the room device.` };
  }
  return { usable: true, action: "", message: "" };
}
