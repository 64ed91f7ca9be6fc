// Original file: proto/hookvisor/v1/hookvisor.proto


export interface Ack {
}

export interface Ack__Output {
}
