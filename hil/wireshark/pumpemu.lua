-- pumpemu.lua: a Wireshark dissector for the pumpemu pump protocol (docs/wireshark.md).
-- GENERATED from protocol/wire.py by hil/wireshark/generate.py: do not edit.
-- Regenerate with: python -m hil.wireshark.generate

local GEN = {}

GEN.sync = { 165, 90 }
GEN.version = 1
GEN.header_len = 15
GEN.crc_len = 2
GEN.tag_len = 16
GEN.max_body_len = 1024
GEN.flag_reply = 1
GEN.flag_sealed = 2

-- opcode -> { name, message type }
GEN.opcodes = {
  [0x01] = { "OPEN_SESSION", "OpenSession" },
  [0x02] = { "AUTHENTICATE", "Authenticate" },
  [0x03] = { "CLOSE_SESSION", "CloseSession" },
  [0x04] = { "KEEP_ALIVE", "KeepAlive" },
  [0x10] = { "READ_DEVICE_INFO", "ReadDeviceInfo" },
  [0x11] = { "READ_STATUS", "ReadStatus" },
  [0x12] = { "READ_PRESCRIPTION", "ReadPrescription" },
  [0x13] = { "READ_EVENT_LOG", "ReadEventLog" },
  [0x14] = { "READ_ALARMS", "ReadAlarms" },
  [0x15] = { "READ_CLOCK", "ReadClock" },
  [0x16] = { "READ_STATUS_DETAIL", "ReadStatusDetail" },
  [0x17] = { "READ_CATHETER", "ReadCatheter" },
  [0x18] = { "READ_PATIENT_VIEW", "ReadPatientView" },
  [0x20] = { "STAGE_PRESCRIPTION", "StagePrescription" },
  [0x21] = { "COMMIT_PRESCRIPTION", "CommitPrescription" },
  [0x22] = { "SET_CLOCK", "SetClock" },
  [0x23] = { "STAGE_PRESCRIPTION_OVERRIDE", "StagePrescriptionOverride" },
  [0x30] = { "START_THERAPY", "StartTherapy" },
  [0x31] = { "STOP_THERAPY", "StopTherapy" },
  [0x32] = { "CLINICIAN_BOLUS", "ClinicianBolus" },
  [0x33] = { "CANCEL_BOLUS", "CancelBolus" },
  [0x34] = { "PATIENT_BOLUS_REQUEST", "PatientBolusRequest" },
  [0x35] = { "PRIMING_BOLUS", "PrimingBolus" },
  [0x36] = { "REFILL_BEGIN", "RefillBegin" },
  [0x37] = { "REFILL_COMPLETE", "RefillComplete" },
  [0x38] = { "ACKNOWLEDGE_ALARM", "AcknowledgeAlarm" },
  [0x39] = { "ALARM_TEST", "AlarmTest" },
  [0x3a] = { "BRIDGE_BOLUS", "BridgeBolus" },
  [0x3b] = { "CLEAR_MEMORY_ERROR", "ClearMemoryError" },
  [0x3c] = { "RESET_FLOW_VALVE", "ResetFlowValve" },
  [0x3d] = { "SET_CATHETER", "SetCatheter" },
  [0x81] = { "CHALLENGE", "Challenge" },
  [0x82] = { "SESSION_OPENED", "SessionOpened" },
  [0x90] = { "DEVICE_INFO", "DeviceInfo" },
  [0x91] = { "STATUS", "Status" },
  [0x92] = { "CURRENT_PRESCRIPTION", "CurrentPrescription" },
  [0x93] = { "EVENT_LOG_PAGE", "EventLogPage" },
  [0x94] = { "ALARM_LIST", "AlarmList" },
  [0x95] = { "CLOCK", "Clock" },
  [0x96] = { "STATUS_DETAIL", "StatusDetail" },
  [0x97] = { "CATHETER_INFO", "CatheterInfo" },
  [0x98] = { "PATIENT_VIEW", "PatientView" },
  [0xa0] = { "PRESCRIPTION_STAGED", "PrescriptionStaged" },
  [0xa3] = { "STAGED_WITH_OVERRIDE", "StagedWithOverride" },
  [0xf0] = { "ACK", "Ack" },
  [0xff] = { "NAK", "Nak" },
}

-- enum name -> { value -> member name }
GEN.enums = {
  AlarmKind = { [1] = "LOW_RESERVOIR", [2] = "RESERVOIR_EMPTY", [3] = "MOTOR_STALL", [4] = "ELECTIVE_REPLACEMENT", [5] = "END_OF_SERVICE", [6] = "MEMORY_ERROR", [7] = "LOW_BATTERY_RESET", [8] = "CONCENTRATION_UNPROGRAMMED" },
  EventKind = { [1] = "POWER_ON", [2] = "CLOCK_SET", [3] = "PRESCRIPTION_STAGED", [4] = "PRESCRIPTION_COMMITTED", [5] = "THERAPY_STARTED", [6] = "THERAPY_STOPPED", [7] = "CLINICIAN_BOLUS_STARTED", [8] = "CLINICIAN_BOLUS_COMPLETED", [9] = "BOLUS_CANCELLED", [10] = "PATIENT_BOLUS_GRANTED", [11] = "PATIENT_BOLUS_REFUSED", [12] = "PATIENT_BOLUS_COMPLETED", [13] = "PRIMING_STARTED", [14] = "PRIMING_COMPLETED", [15] = "REFILL_BEGUN", [16] = "REFILL_COMPLETED", [17] = "REFILL_DISCREPANCY", [18] = "ALARM_RAISED", [19] = "ALARM_ACKNOWLEDGED", [20] = "ALARM_CLEARED", [21] = "ALARM_TEST", [22] = "MOTOR_STALL", [23] = "MOTOR_RECOVERED", [24] = "RESERVOIR_EMPTY", [25] = "ELECTIVE_REPLACEMENT", [26] = "END_OF_SERVICE", [27] = "RESET", [28] = "MEMORY_ERROR", [29] = "COMMAND_REFUSED", [30] = "SECURITY_EVENT", [31] = "SESSION_OPENED", [32] = "SESSION_CLOSED", [33] = "FLOW_VALVE_RESET", [34] = "SECURITY_SUMMARY", [40] = "OVERRIDE_STAGED", [41] = "OVERRIDE_COMMITTED", [42] = "BRIDGE_STARTED", [43] = "BRIDGE_COMPLETED", [44] = "CONCENTRATION_UNPROGRAMMED", [48] = "CATHETER_SET" },
  FieldId = { [0] = "NONE", [1] = "DRUG_NAME", [2] = "CONCENTRATION", [3] = "MODE", [4] = "REPEAT", [5] = "STEP_COUNT", [6] = "STEP_START", [7] = "STEP_RATE", [8] = "PATIENT_BOLUS_DOSE", [9] = "PATIENT_BOLUS_DURATION", [10] = "PATIENT_BOLUS_LOCKOUT", [11] = "PATIENT_BOLUS_MAX_PER_24H", [12] = "LOW_RESERVOIR_THRESHOLD", [13] = "BOLUS_DOSE", [14] = "BOLUS_DURATION", [15] = "CATHETER_VOLUME", [16] = "WITHDRAWN_VOLUME", [17] = "NEW_VOLUME", [18] = "NEW_CONCENTRATION", [19] = "CLOCK", [20] = "DIGEST", [21] = "COMMAND_ID", [22] = "LOG_INDEX", [23] = "LOG_COUNT", [24] = "ALARM", [25] = "ROLE", [26] = "DAILY_DOSE", [27] = "OVERRIDE_FLAGS", [32] = "CATHETER_LENGTH" },
  InfusionMode = { [0] = "STOPPED", [1] = "CONTINUOUS", [2] = "FLEX" },
  Opcode = { [1] = "OPEN_SESSION", [2] = "AUTHENTICATE", [3] = "CLOSE_SESSION", [4] = "KEEP_ALIVE", [16] = "READ_DEVICE_INFO", [17] = "READ_STATUS", [18] = "READ_PRESCRIPTION", [19] = "READ_EVENT_LOG", [20] = "READ_ALARMS", [21] = "READ_CLOCK", [22] = "READ_STATUS_DETAIL", [23] = "READ_CATHETER", [24] = "READ_PATIENT_VIEW", [32] = "STAGE_PRESCRIPTION", [33] = "COMMIT_PRESCRIPTION", [34] = "SET_CLOCK", [35] = "STAGE_PRESCRIPTION_OVERRIDE", [48] = "START_THERAPY", [49] = "STOP_THERAPY", [50] = "CLINICIAN_BOLUS", [51] = "CANCEL_BOLUS", [52] = "PATIENT_BOLUS_REQUEST", [53] = "PRIMING_BOLUS", [54] = "REFILL_BEGIN", [55] = "REFILL_COMPLETE", [56] = "ACKNOWLEDGE_ALARM", [57] = "ALARM_TEST", [58] = "BRIDGE_BOLUS", [59] = "CLEAR_MEMORY_ERROR", [60] = "RESET_FLOW_VALVE", [61] = "SET_CATHETER", [129] = "CHALLENGE", [130] = "SESSION_OPENED", [144] = "DEVICE_INFO", [145] = "STATUS", [146] = "CURRENT_PRESCRIPTION", [147] = "EVENT_LOG_PAGE", [148] = "ALARM_LIST", [149] = "CLOCK", [150] = "STATUS_DETAIL", [151] = "CATHETER_INFO", [152] = "PATIENT_VIEW", [160] = "PRESCRIPTION_STAGED", [163] = "STAGED_WITH_OVERRIDE", [240] = "ACK", [255] = "NAK" },
  RefusalCode = { [1] = "FRAME_CORRUPT", [2] = "UNSUPPORTED_VERSION", [3] = "UNKNOWN_OPCODE", [4] = "MALFORMED_PAYLOAD", [5] = "INVALID_FIELD", [16] = "NOT_AUTHENTICATED", [17] = "AUTHENTICATION_FAILED", [18] = "LOCKED_OUT", [19] = "NOT_PERMITTED_FOR_ROLE", [20] = "SESSION_EXPIRED", [21] = "REPLAY_DETECTED", [22] = "SESSION_BUSY", [23] = "COMMAND_ID_CONFLICT", [24] = "FRAME_NOT_AUTHENTIC", [25] = "HANDSHAKE_STALE", [32] = "NOTHING_STAGED", [33] = "DIGEST_MISMATCH", [34] = "STAGE_EXPIRED", [35] = "TOO_MANY_STEPS", [36] = "BAD_SCHEDULE", [37] = "UNKNOWN_DRUG", [38] = "CONCENTRATION_OUT_OF_RANGE", [39] = "SOFT_LIMIT_NEEDS_OVERRIDE", [40] = "DOSE_CHANGE_NEEDS_OVERRIDE", [41] = "CONCENTRATION_CHANGE_PENDING", [42] = "NO_CONCENTRATION_CHANGE", [48] = "RATE_ABOVE_MAX", [49] = "RATE_BELOW_MIN", [50] = "DAILY_DOSE_ABOVE_MAX", [51] = "BOLUS_ABOVE_MAX", [52] = "LOCKOUT_ACTIVE", [53] = "DAILY_BOLUS_COUNT_REACHED", [54] = "RESERVOIR_EMPTY", [55] = "INSUFFICIENT_RESERVOIR", [56] = "THERAPY_STOPPED", [57] = "NO_PATIENT_BOLUS", [58] = "BOLUS_IN_PROGRESS", [59] = "NO_BOLUS_IN_PROGRESS", [60] = "VOLUME_ABOVE_CAPACITY", [61] = "REFILL_NOT_STARTED", [62] = "REFILL_IN_PROGRESS", [63] = "NO_SUCH_ALARM", [64] = "BAD_STATE", [65] = "NO_FLOW_VALVE", [80] = "MOTOR_STALLED", [81] = "END_OF_SERVICE", [82] = "MEMORY_ERROR", [83] = "NOT_STORED" },
  Repeat = { [0] = "DAILY", [1] = "WEEKLY" },
  Role = { [1] = "CLINICIAN", [2] = "PATIENT" },
  TherapyState = { [0] = "STOPPED", [1] = "CONTINUOUS", [2] = "FLEX", [3] = "CLINICIAN_BOLUS", [4] = "PATIENT_BOLUS", [5] = "PRIMING", [6] = "SUSPENDED_BY_ALARM", [7] = "END_OF_SERVICE" },
}

-- CRC-16/CCITT-FALSE byte table (index 0..255)
GEN.crc_table = {
  0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7,
  0x8108, 0x9129, 0xa14a, 0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef,
  0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
  0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de,
  0x2462, 0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485,
  0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
  0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4,
  0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc,
  0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
  0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b,
  0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
  0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
  0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41,
  0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b, 0x8d68, 0x9d49,
  0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
  0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78,
  0x9188, 0x81a9, 0xb1ca, 0xa1eb, 0xd10c, 0xc12d, 0xf14e, 0xe16f,
  0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
  0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e,
  0x02b1, 0x1290, 0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256,
  0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
  0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
  0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c,
  0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
  0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab,
  0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3,
  0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
  0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92,
  0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8, 0x8dc9,
  0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
  0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8,
  0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
}

-- opcode -> the payload's fields, in wire order
GEN.layouts = {
  [0x01] = {
    { name = "role", path = "role", abbrev = "pumpemu.msg.role", wire = "u8", kind = "enum", enum = "Role" },
    { name = "programmer_nonce", path = "programmer_nonce", abbrev = "pumpemu.msg.programmer_nonce", wire = "bytes", kind = "bytes", size = 16 },
  },
  [0x02] = {
    { name = "proof", path = "proof", abbrev = "pumpemu.msg.proof", wire = "bytes", kind = "bytes", size = 32 },
  },
  [0x03] = {},
  [0x04] = {},
  [0x10] = {},
  [0x11] = {},
  [0x12] = {},
  [0x13] = {
    { name = "from_seq", path = "from_seq", abbrev = "pumpemu.msg.from_seq", wire = "u32", kind = "int" },
    { name = "count", path = "count", abbrev = "pumpemu.msg.count", wire = "u8", kind = "int" },
  },
  [0x14] = {},
  [0x15] = {},
  [0x16] = {},
  [0x17] = {},
  [0x18] = {},
  [0x20] = {
    { name = "prescription", path = "prescription", abbrev = "pumpemu.msg.prescription", wire = "record", kind = "record", record_type = "Prescription", fields = {
        { name = "drug_name", path = "prescription.drug_name", abbrev = "pumpemu.msg.prescription.drug_name", wire = "text", kind = "text" },
        { name = "concentration_ug_per_ml", path = "prescription.concentration_ug_per_ml", abbrev = "pumpemu.msg.prescription.concentration_ug_per_ml", wire = "u32", kind = "int" },
        { name = "mode", path = "prescription.mode", abbrev = "pumpemu.msg.prescription.mode", wire = "u8", kind = "enum", enum = "InfusionMode" },
        { name = "repeat", path = "prescription.repeat", abbrev = "pumpemu.msg.prescription.repeat", wire = "u8", kind = "enum", enum = "Repeat" },
        { name = "steps", path = "prescription.steps", abbrev = "pumpemu.msg.prescription.steps", wire = "list", kind = "list", record_type = "FlexStep", fields = {
            { name = "start_s", path = "prescription.steps.start_s", abbrev = "pumpemu.msg.prescription.steps.start_s", wire = "u32", kind = "int" },
            { name = "rate_nl_per_day", path = "prescription.steps.rate_nl_per_day", abbrev = "pumpemu.msg.prescription.steps.rate_nl_per_day", wire = "u32", kind = "int" },
          } },
        { name = "patient_bolus", path = "prescription.patient_bolus", abbrev = "pumpemu.msg.prescription.patient_bolus", wire = "optional", kind = "optional", record_type = "PatientBolusLimits", fields = {
            { name = "dose_nl", path = "prescription.patient_bolus.dose_nl", abbrev = "pumpemu.msg.prescription.patient_bolus.dose_nl", wire = "u32", kind = "int" },
            { name = "duration_s", path = "prescription.patient_bolus.duration_s", abbrev = "pumpemu.msg.prescription.patient_bolus.duration_s", wire = "u32", kind = "int" },
            { name = "lockout_s", path = "prescription.patient_bolus.lockout_s", abbrev = "pumpemu.msg.prescription.patient_bolus.lockout_s", wire = "u32", kind = "int" },
            { name = "max_per_24h", path = "prescription.patient_bolus.max_per_24h", abbrev = "pumpemu.msg.prescription.patient_bolus.max_per_24h", wire = "u8", kind = "int" },
          } },
        { name = "low_reservoir_threshold_nl", path = "prescription.low_reservoir_threshold_nl", abbrev = "pumpemu.msg.prescription.low_reservoir_threshold_nl", wire = "u32", kind = "int" },
      } },
  },
  [0x21] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "digest", path = "digest", abbrev = "pumpemu.msg.digest", wire = "bytes", kind = "bytes", size = 16 },
  },
  [0x22] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "pump_time_ms", path = "pump_time_ms", abbrev = "pumpemu.msg.pump_time_ms", wire = "u64", kind = "int" },
  },
  [0x23] = {
    { name = "overrides", path = "overrides", abbrev = "pumpemu.msg.overrides", wire = "u8", kind = "int" },
    { name = "prescription", path = "prescription", abbrev = "pumpemu.msg.prescription", wire = "record", kind = "record", record_type = "Prescription", fields = {
        { name = "drug_name", path = "prescription.drug_name", abbrev = "pumpemu.msg.prescription.drug_name", wire = "text", kind = "text" },
        { name = "concentration_ug_per_ml", path = "prescription.concentration_ug_per_ml", abbrev = "pumpemu.msg.prescription.concentration_ug_per_ml", wire = "u32", kind = "int" },
        { name = "mode", path = "prescription.mode", abbrev = "pumpemu.msg.prescription.mode", wire = "u8", kind = "enum", enum = "InfusionMode" },
        { name = "repeat", path = "prescription.repeat", abbrev = "pumpemu.msg.prescription.repeat", wire = "u8", kind = "enum", enum = "Repeat" },
        { name = "steps", path = "prescription.steps", abbrev = "pumpemu.msg.prescription.steps", wire = "list", kind = "list", record_type = "FlexStep", fields = {
            { name = "start_s", path = "prescription.steps.start_s", abbrev = "pumpemu.msg.prescription.steps.start_s", wire = "u32", kind = "int" },
            { name = "rate_nl_per_day", path = "prescription.steps.rate_nl_per_day", abbrev = "pumpemu.msg.prescription.steps.rate_nl_per_day", wire = "u32", kind = "int" },
          } },
        { name = "patient_bolus", path = "prescription.patient_bolus", abbrev = "pumpemu.msg.prescription.patient_bolus", wire = "optional", kind = "optional", record_type = "PatientBolusLimits", fields = {
            { name = "dose_nl", path = "prescription.patient_bolus.dose_nl", abbrev = "pumpemu.msg.prescription.patient_bolus.dose_nl", wire = "u32", kind = "int" },
            { name = "duration_s", path = "prescription.patient_bolus.duration_s", abbrev = "pumpemu.msg.prescription.patient_bolus.duration_s", wire = "u32", kind = "int" },
            { name = "lockout_s", path = "prescription.patient_bolus.lockout_s", abbrev = "pumpemu.msg.prescription.patient_bolus.lockout_s", wire = "u32", kind = "int" },
            { name = "max_per_24h", path = "prescription.patient_bolus.max_per_24h", abbrev = "pumpemu.msg.prescription.patient_bolus.max_per_24h", wire = "u8", kind = "int" },
          } },
        { name = "low_reservoir_threshold_nl", path = "prescription.low_reservoir_threshold_nl", abbrev = "pumpemu.msg.prescription.low_reservoir_threshold_nl", wire = "u32", kind = "int" },
      } },
  },
  [0x30] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x31] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x32] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "dose_nl", path = "dose_nl", abbrev = "pumpemu.msg.dose_nl", wire = "u32", kind = "int" },
    { name = "duration_s", path = "duration_s", abbrev = "pumpemu.msg.duration_s", wire = "u32", kind = "int" },
  },
  [0x33] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x34] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x35] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "catheter_volume_nl", path = "catheter_volume_nl", abbrev = "pumpemu.msg.catheter_volume_nl", wire = "u32", kind = "int" },
  },
  [0x36] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x37] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "withdrawn_nl", path = "withdrawn_nl", abbrev = "pumpemu.msg.withdrawn_nl", wire = "u32", kind = "int" },
    { name = "new_volume_nl", path = "new_volume_nl", abbrev = "pumpemu.msg.new_volume_nl", wire = "u32", kind = "int" },
    { name = "new_concentration_ug_per_ml", path = "new_concentration_ug_per_ml", abbrev = "pumpemu.msg.new_concentration_ug_per_ml", wire = "u32", kind = "int" },
  },
  [0x38] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "alarm", path = "alarm", abbrev = "pumpemu.msg.alarm", wire = "u8", kind = "enum", enum = "AlarmKind" },
  },
  [0x39] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x3a] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x3b] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x3c] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
  },
  [0x3d] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "length_cm", path = "length_cm", abbrev = "pumpemu.msg.length_cm", wire = "u16", kind = "int" },
    { name = "primed", path = "primed", abbrev = "pumpemu.msg.primed", wire = "u8", kind = "bool" },
  },
  [0x81] = {
    { name = "pump_nonce", path = "pump_nonce", abbrev = "pumpemu.msg.pump_nonce", wire = "bytes", kind = "bytes", size = 16 },
    { name = "serial", path = "serial", abbrev = "pumpemu.msg.serial", wire = "text", kind = "text" },
  },
  [0x82] = {
    { name = "proof", path = "proof", abbrev = "pumpemu.msg.proof", wire = "bytes", kind = "bytes", size = 32 },
    { name = "idle_timeout_s", path = "idle_timeout_s", abbrev = "pumpemu.msg.idle_timeout_s", wire = "u32", kind = "int" },
    { name = "max_session_s", path = "max_session_s", abbrev = "pumpemu.msg.max_session_s", wire = "u32", kind = "int" },
  },
  [0x90] = {
    { name = "model", path = "model", abbrev = "pumpemu.msg.model", wire = "text", kind = "text" },
    { name = "serial", path = "serial", abbrev = "pumpemu.msg.serial", wire = "text", kind = "text" },
    { name = "firmware_version", path = "firmware_version", abbrev = "pumpemu.msg.firmware_version", wire = "text", kind = "text" },
    { name = "limits", path = "limits", abbrev = "pumpemu.msg.limits", wire = "record", kind = "record", record_type = "ProfileLimits", fields = {
        { name = "reservoir_capacity_nl", path = "limits.reservoir_capacity_nl", abbrev = "pumpemu.msg.limits.reservoir_capacity_nl", wire = "u32", kind = "int" },
        { name = "stroke_volume_nl", path = "limits.stroke_volume_nl", abbrev = "pumpemu.msg.limits.stroke_volume_nl", wire = "u32", kind = "int" },
        { name = "rate_min_nl_per_day", path = "limits.rate_min_nl_per_day", abbrev = "pumpemu.msg.limits.rate_min_nl_per_day", wire = "u32", kind = "int" },
        { name = "rate_max_nl_per_day", path = "limits.rate_max_nl_per_day", abbrev = "pumpemu.msg.limits.rate_max_nl_per_day", wire = "u32", kind = "int" },
        { name = "max_clinician_bolus_nl", path = "limits.max_clinician_bolus_nl", abbrev = "pumpemu.msg.limits.max_clinician_bolus_nl", wire = "u32", kind = "int" },
        { name = "max_daily_dose_pg", path = "limits.max_daily_dose_pg", abbrev = "pumpemu.msg.limits.max_daily_dose_pg", wire = "u64", kind = "int" },
        { name = "max_flex_steps", path = "limits.max_flex_steps", abbrev = "pumpemu.msg.limits.max_flex_steps", wire = "u8", kind = "int" },
        { name = "patient_bolus_dose_max_nl", path = "limits.patient_bolus_dose_max_nl", abbrev = "pumpemu.msg.limits.patient_bolus_dose_max_nl", wire = "u32", kind = "int" },
        { name = "patient_bolus_duration_min_s", path = "limits.patient_bolus_duration_min_s", abbrev = "pumpemu.msg.limits.patient_bolus_duration_min_s", wire = "u32", kind = "int" },
        { name = "patient_bolus_duration_max_s", path = "limits.patient_bolus_duration_max_s", abbrev = "pumpemu.msg.limits.patient_bolus_duration_max_s", wire = "u32", kind = "int" },
        { name = "patient_bolus_lockout_min_s", path = "limits.patient_bolus_lockout_min_s", abbrev = "pumpemu.msg.limits.patient_bolus_lockout_min_s", wire = "u32", kind = "int" },
        { name = "patient_bolus_lockout_max_s", path = "limits.patient_bolus_lockout_max_s", abbrev = "pumpemu.msg.limits.patient_bolus_lockout_max_s", wire = "u32", kind = "int" },
        { name = "patient_bolus_max_per_24h", path = "limits.patient_bolus_max_per_24h", abbrev = "pumpemu.msg.limits.patient_bolus_max_per_24h", wire = "u8", kind = "int" },
        { name = "low_reservoir_threshold_min_nl", path = "limits.low_reservoir_threshold_min_nl", abbrev = "pumpemu.msg.limits.low_reservoir_threshold_min_nl", wire = "u32", kind = "int" },
        { name = "low_reservoir_threshold_max_nl", path = "limits.low_reservoir_threshold_max_nl", abbrev = "pumpemu.msg.limits.low_reservoir_threshold_max_nl", wire = "u32", kind = "int" },
        { name = "max_priming_volume_nl", path = "limits.max_priming_volume_nl", abbrev = "pumpemu.msg.limits.max_priming_volume_nl", wire = "u32", kind = "int" },
      } },
  },
  [0x91] = {
    { name = "state", path = "state", abbrev = "pumpemu.msg.state", wire = "u8", kind = "enum", enum = "TherapyState" },
    { name = "rate_nl_per_day", path = "rate_nl_per_day", abbrev = "pumpemu.msg.rate_nl_per_day", wire = "u32", kind = "int" },
    { name = "reservoir_nl", path = "reservoir_nl", abbrev = "pumpemu.msg.reservoir_nl", wire = "u32", kind = "int" },
    { name = "battery_percent", path = "battery_percent", abbrev = "pumpemu.msg.battery_percent", wire = "u8", kind = "int" },
    { name = "active_alarms", path = "active_alarms", abbrev = "pumpemu.msg.active_alarms", wire = "u32", kind = "enum_set", enum = "AlarmKind" },
    { name = "last_command_id", path = "last_command_id", abbrev = "pumpemu.msg.last_command_id", wire = "u32", kind = "int" },
    { name = "pump_time_ms", path = "pump_time_ms", abbrev = "pumpemu.msg.pump_time_ms", wire = "u64", kind = "int" },
  },
  [0x92] = {
    { name = "prescription", path = "prescription", abbrev = "pumpemu.msg.prescription", wire = "optional", kind = "optional", record_type = "Prescription", fields = {
        { name = "drug_name", path = "prescription.drug_name", abbrev = "pumpemu.msg.prescription.drug_name", wire = "text", kind = "text" },
        { name = "concentration_ug_per_ml", path = "prescription.concentration_ug_per_ml", abbrev = "pumpemu.msg.prescription.concentration_ug_per_ml", wire = "u32", kind = "int" },
        { name = "mode", path = "prescription.mode", abbrev = "pumpemu.msg.prescription.mode", wire = "u8", kind = "enum", enum = "InfusionMode" },
        { name = "repeat", path = "prescription.repeat", abbrev = "pumpemu.msg.prescription.repeat", wire = "u8", kind = "enum", enum = "Repeat" },
        { name = "steps", path = "prescription.steps", abbrev = "pumpemu.msg.prescription.steps", wire = "list", kind = "list", record_type = "FlexStep", fields = {
            { name = "start_s", path = "prescription.steps.start_s", abbrev = "pumpemu.msg.prescription.steps.start_s", wire = "u32", kind = "int" },
            { name = "rate_nl_per_day", path = "prescription.steps.rate_nl_per_day", abbrev = "pumpemu.msg.prescription.steps.rate_nl_per_day", wire = "u32", kind = "int" },
          } },
        { name = "patient_bolus", path = "prescription.patient_bolus", abbrev = "pumpemu.msg.prescription.patient_bolus", wire = "optional", kind = "optional", record_type = "PatientBolusLimits", fields = {
            { name = "dose_nl", path = "prescription.patient_bolus.dose_nl", abbrev = "pumpemu.msg.prescription.patient_bolus.dose_nl", wire = "u32", kind = "int" },
            { name = "duration_s", path = "prescription.patient_bolus.duration_s", abbrev = "pumpemu.msg.prescription.patient_bolus.duration_s", wire = "u32", kind = "int" },
            { name = "lockout_s", path = "prescription.patient_bolus.lockout_s", abbrev = "pumpemu.msg.prescription.patient_bolus.lockout_s", wire = "u32", kind = "int" },
            { name = "max_per_24h", path = "prescription.patient_bolus.max_per_24h", abbrev = "pumpemu.msg.prescription.patient_bolus.max_per_24h", wire = "u8", kind = "int" },
          } },
        { name = "low_reservoir_threshold_nl", path = "prescription.low_reservoir_threshold_nl", abbrev = "pumpemu.msg.prescription.low_reservoir_threshold_nl", wire = "u32", kind = "int" },
      } },
  },
  [0x93] = {
    { name = "oldest_seq", path = "oldest_seq", abbrev = "pumpemu.msg.oldest_seq", wire = "u32", kind = "int" },
    { name = "next_seq", path = "next_seq", abbrev = "pumpemu.msg.next_seq", wire = "u32", kind = "int" },
    { name = "entries", path = "entries", abbrev = "pumpemu.msg.entries", wire = "list", kind = "list", record_type = "LogEntry", fields = {
        { name = "seq", path = "entries.seq", abbrev = "pumpemu.msg.entries.seq", wire = "u32", kind = "int" },
        { name = "time_ms", path = "entries.time_ms", abbrev = "pumpemu.msg.entries.time_ms", wire = "u64", kind = "int" },
        { name = "kind", path = "entries.kind", abbrev = "pumpemu.msg.entries.kind", wire = "u8", kind = "enum", enum = "EventKind" },
        { name = "detail", path = "entries.detail", abbrev = "pumpemu.msg.entries.detail", wire = "u16", kind = "int" },
        { name = "value_a", path = "entries.value_a", abbrev = "pumpemu.msg.entries.value_a", wire = "u64", kind = "int" },
        { name = "value_b", path = "entries.value_b", abbrev = "pumpemu.msg.entries.value_b", wire = "u64", kind = "int" },
      } },
  },
  [0x94] = {
    { name = "alarms", path = "alarms", abbrev = "pumpemu.msg.alarms", wire = "list", kind = "list", record_type = "AlarmRecord", fields = {
        { name = "kind", path = "alarms.kind", abbrev = "pumpemu.msg.alarms.kind", wire = "u8", kind = "enum", enum = "AlarmKind" },
        { name = "since_ms", path = "alarms.since_ms", abbrev = "pumpemu.msg.alarms.since_ms", wire = "u64", kind = "int" },
        { name = "acknowledged", path = "alarms.acknowledged", abbrev = "pumpemu.msg.alarms.acknowledged", wire = "u8", kind = "bool" },
      } },
  },
  [0x95] = {
    { name = "pump_time_ms", path = "pump_time_ms", abbrev = "pumpemu.msg.pump_time_ms", wire = "u64", kind = "int" },
  },
  [0x96] = {
    { name = "pump_time_ms", path = "pump_time_ms", abbrev = "pumpemu.msg.pump_time_ms", wire = "u64", kind = "int" },
    { name = "eri_reached", path = "eri_reached", abbrev = "pumpemu.msg.eri_reached", wire = "u8", kind = "bool" },
    { name = "eri_at_ms", path = "eri_at_ms", abbrev = "pumpemu.msg.eri_at_ms", wire = "u64", kind = "int" },
    { name = "end_of_service_at_ms", path = "end_of_service_at_ms", abbrev = "pumpemu.msg.end_of_service_at_ms", wire = "u64", kind = "int" },
    { name = "low_reservoir_at_ms", path = "low_reservoir_at_ms", abbrev = "pumpemu.msg.low_reservoir_at_ms", wire = "u64", kind = "int" },
    { name = "empty_at_ms", path = "empty_at_ms", abbrev = "pumpemu.msg.empty_at_ms", wire = "u64", kind = "int" },
    { name = "lockout_ends_ms", path = "lockout_ends_ms", abbrev = "pumpemu.msg.lockout_ends_ms", wire = "u64", kind = "int" },
    { name = "patient_boluses_24h", path = "patient_boluses_24h", abbrev = "pumpemu.msg.patient_boluses_24h", wire = "u8", kind = "int" },
    { name = "mass_today_pg", path = "mass_today_pg", abbrev = "pumpemu.msg.mass_today_pg", wire = "u64", kind = "int" },
    { name = "mass_since_refill_pg", path = "mass_since_refill_pg", abbrev = "pumpemu.msg.mass_since_refill_pg", wire = "u64", kind = "int" },
    { name = "delivered_nl", path = "delivered_nl", abbrev = "pumpemu.msg.delivered_nl", wire = "u64", kind = "int" },
    { name = "delivered_pg", path = "delivered_pg", abbrev = "pumpemu.msg.delivered_pg", wire = "u64", kind = "int" },
  },
  [0x97] = {
    { name = "length_cm", path = "length_cm", abbrev = "pumpemu.msg.length_cm", wire = "u16", kind = "int" },
    { name = "dead_volume_nl", path = "dead_volume_nl", abbrev = "pumpemu.msg.dead_volume_nl", wire = "u32", kind = "int" },
    { name = "primed", path = "primed", abbrev = "pumpemu.msg.primed", wire = "u8", kind = "bool" },
    { name = "max_length_cm", path = "max_length_cm", abbrev = "pumpemu.msg.max_length_cm", wire = "u16", kind = "int" },
  },
  [0x98] = {
    { name = "pump_time_ms", path = "pump_time_ms", abbrev = "pumpemu.msg.pump_time_ms", wire = "u64", kind = "int" },
    { name = "patient_bolus_allowed", path = "patient_bolus_allowed", abbrev = "pumpemu.msg.patient_bolus_allowed", wire = "u8", kind = "bool" },
    { name = "next_bolus_at_ms", path = "next_bolus_at_ms", abbrev = "pumpemu.msg.next_bolus_at_ms", wire = "u64", kind = "int" },
    { name = "boluses_left_24h", path = "boluses_left_24h", abbrev = "pumpemu.msg.boluses_left_24h", wire = "u8", kind = "int" },
  },
  [0xa0] = {
    { name = "digest", path = "digest", abbrev = "pumpemu.msg.digest", wire = "bytes", kind = "bytes", size = 16 },
    { name = "daily_volume_nl", path = "daily_volume_nl", abbrev = "pumpemu.msg.daily_volume_nl", wire = "u32", kind = "int" },
    { name = "daily_mass_pg", path = "daily_mass_pg", abbrev = "pumpemu.msg.daily_mass_pg", wire = "u64", kind = "int" },
    { name = "low_reservoir_at_ms", path = "low_reservoir_at_ms", abbrev = "pumpemu.msg.low_reservoir_at_ms", wire = "u64", kind = "int" },
    { name = "empty_at_ms", path = "empty_at_ms", abbrev = "pumpemu.msg.empty_at_ms", wire = "u64", kind = "int" },
    { name = "stage_lifetime_s", path = "stage_lifetime_s", abbrev = "pumpemu.msg.stage_lifetime_s", wire = "u32", kind = "int" },
  },
  [0xa3] = {
    { name = "digest", path = "digest", abbrev = "pumpemu.msg.digest", wire = "bytes", kind = "bytes", size = 16 },
    { name = "daily_volume_nl", path = "daily_volume_nl", abbrev = "pumpemu.msg.daily_volume_nl", wire = "u32", kind = "int" },
    { name = "daily_mass_pg", path = "daily_mass_pg", abbrev = "pumpemu.msg.daily_mass_pg", wire = "u64", kind = "int" },
    { name = "low_reservoir_at_ms", path = "low_reservoir_at_ms", abbrev = "pumpemu.msg.low_reservoir_at_ms", wire = "u64", kind = "int" },
    { name = "empty_at_ms", path = "empty_at_ms", abbrev = "pumpemu.msg.empty_at_ms", wire = "u64", kind = "int" },
    { name = "stage_lifetime_s", path = "stage_lifetime_s", abbrev = "pumpemu.msg.stage_lifetime_s", wire = "u32", kind = "int" },
    { name = "overrides_used", path = "overrides_used", abbrev = "pumpemu.msg.overrides_used", wire = "u8", kind = "int" },
    { name = "soft_limit_pg", path = "soft_limit_pg", abbrev = "pumpemu.msg.soft_limit_pg", wire = "u64", kind = "int" },
    { name = "reference_daily_mass_pg", path = "reference_daily_mass_pg", abbrev = "pumpemu.msg.reference_daily_mass_pg", wire = "u64", kind = "int" },
  },
  [0xf0] = {
    { name = "command_id", path = "command_id", abbrev = "pumpemu.msg.command_id", wire = "u32", kind = "int" },
    { name = "request", path = "request", abbrev = "pumpemu.msg.request", wire = "u8", kind = "enum", enum = "Opcode" },
    { name = "state", path = "state", abbrev = "pumpemu.msg.state", wire = "u8", kind = "enum", enum = "TherapyState" },
    { name = "reservoir_nl", path = "reservoir_nl", abbrev = "pumpemu.msg.reservoir_nl", wire = "u32", kind = "int" },
    { name = "value", path = "value", abbrev = "pumpemu.msg.value", wire = "u64", kind = "int" },
  },
  [0xff] = {
    { name = "code", path = "code", abbrev = "pumpemu.msg.code", wire = "u8", kind = "enum", enum = "RefusalCode" },
    { name = "field", path = "field", abbrev = "pumpemu.msg.field", wire = "u8", kind = "enum", enum = "FieldId" },
    { name = "limit", path = "limit", abbrev = "pumpemu.msg.limit", wire = "u64", kind = "int" },
  },
}

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
