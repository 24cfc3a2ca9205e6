{{/*
The sidecar's volumes (for the pod's `volumes:` list) and its mounts (used by the container).
*/}}

{{/*
Pod volumes: the private key from the existing Secret (root-owned files of mode
tokenProxy.privateKey.defaultMode, 0444 by default: without a pod-wide fsGroup the sidecar's uid
65532 reads them through the "other" bits; only the sidecar mounts this volume), an emptyDir for /tmp,
for a plain (non-native) sidecar an in-memory emptyDir where it writes the token `POST /shutdown`
needs (mounted by the sidecar and, read-only, by the app: see `logicnets-token-proxy.appVolumeMounts`),
and the config file and CA ConfigMaps and the client certificate Secret when they are set. Use it under `volumes:` with nindent.
*/}}
{{- define "logicnets-token-proxy.volumes" -}}
- name: logicnets-token-proxy-key
  secret:
    secretName: {{ .Values.tokenProxy.privateKey.secretName | quote }}
    defaultMode: {{ .Values.tokenProxy.privateKey.defaultMode }}
- name: logicnets-token-proxy-tmp
  emptyDir:
    sizeLimit: {{ .Values.tokenProxy.tmpSizeLimit }}
{{- if include "logicnets-token-proxy.shutdownTokenFile" . }}
- name: logicnets-token-proxy-admin
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if .Values.tokenProxy.config }}
- name: logicnets-token-proxy-config
  configMap:
    name: {{ include "logicnets-token-proxy.configMapName" . }}
    items:
      - key: config.yaml
        path: config.yaml
{{- end }}
{{- if .Values.tokenProxy.clientCertificate.secretName }}
- name: logicnets-token-proxy-client-cert
  secret:
    secretName: {{ .Values.tokenProxy.clientCertificate.secretName | quote }}
    defaultMode: {{ .Values.tokenProxy.clientCertificate.defaultMode }}
{{- end }}
{{- if .Values.tokenProxy.ca.configMapName }}
- name: logicnets-token-proxy-ca
  configMap:
    name: {{ .Values.tokenProxy.ca.configMapName | quote }}
    items:
      - key: {{ .Values.tokenProxy.ca.key | quote }}
        path: {{ .Values.tokenProxy.ca.key | quote }}
{{- end }}
{{- end -}}

{{/* The sidecar container's volume mounts. The key folder is mounted whole (no subPath) so a rotated Secret reaches it. */}}
{{- define "logicnets-token-proxy.volumeMounts" -}}
- name: logicnets-token-proxy-key
  mountPath: {{ .Values.tokenProxy.privateKey.mountPath }}
  readOnly: true
- name: logicnets-token-proxy-tmp
  mountPath: /tmp
{{- if include "logicnets-token-proxy.shutdownTokenFile" . }}
- name: logicnets-token-proxy-admin
  mountPath: {{ include "logicnets-token-proxy.adminDir" . }}
{{- end }}
{{- if .Values.tokenProxy.config }}
- name: logicnets-token-proxy-config
  mountPath: {{ .Values.tokenProxy.configMountPath }}
  readOnly: true
{{- end }}
{{- if .Values.tokenProxy.clientCertificate.secretName }}
- name: logicnets-token-proxy-client-cert
  mountPath: {{ .Values.tokenProxy.clientCertificate.mountPath }}
  readOnly: true
{{- end }}
{{- if .Values.tokenProxy.ca.configMapName }}
- name: logicnets-token-proxy-ca
  mountPath: {{ .Values.tokenProxy.ca.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Folder of the shutdown token in the sidecar and the app (the in-memory emptyDir). */}}
{{- define "logicnets-token-proxy.adminDir" -}}
/var/run/logicnets-token-proxy-admin
{{- end -}}

{{/*
The file holding the token that `POST /shutdown` needs (ADMIN_SHUTDOWN_TOKEN_FILE), for a plain
(non-native) sidecar, the only kind an app must stop itself (in a Job). Empty for a native sidecar:
Kubernetes stops it, and its `/shutdown` stays off. The sidecar writes a new random token there at
every start; the app sends it as `Authorization: Bearer $(cat <file>)`.
*/}}
{{- define "logicnets-token-proxy.shutdownTokenFile" -}}
{{- if not .Values.tokenProxy.nativeSidecar -}}
{{ include "logicnets-token-proxy.adminDir" . }}/shutdown-token
{{- end -}}
{{- end -}}

{{/*
The app container's read-only mount of the shutdown token's folder, for an app that ends a plain
sidecar with `POST /shutdown` (a Job); empty for a native sidecar. Only the containers that mount
it can read the token. Use it under the app container's `volumeMounts:` with nindent.
*/}}
{{- define "logicnets-token-proxy.appVolumeMounts" -}}
{{- if include "logicnets-token-proxy.shutdownTokenFile" . -}}
- name: logicnets-token-proxy-admin
  mountPath: {{ include "logicnets-token-proxy.adminDir" . }}
  readOnly: true
{{- end -}}
{{- end -}}
