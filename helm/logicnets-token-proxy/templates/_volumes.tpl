{{/*
The sidecar's volumes (for the pod's `volumes:` list) and its mounts (used by the container).
*/}}

{{/*
Pod volumes: the private key from the existing Secret (root-owned files of mode
tokenProxy.privateKey.defaultMode, 0444 by default: without a pod-wide fsGroup the sidecar's uid
65532 reads them through the "other" bits; only the sidecar mounts this volume), an emptyDir for /tmp,
the config file and CA ConfigMaps and the client certificate Secret when they are set. Use it under `volumes:` with nindent.
*/}}
{{- define "logicnets-token-proxy.volumes" -}}
- name: logicnets-token-proxy-key
  secret:
    secretName: {{ .Values.tokenProxy.privateKey.secretName | quote }}
    defaultMode: {{ .Values.tokenProxy.privateKey.defaultMode }}
- name: logicnets-token-proxy-tmp
  emptyDir:
    sizeLimit: {{ .Values.tokenProxy.tmpSizeLimit }}
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
