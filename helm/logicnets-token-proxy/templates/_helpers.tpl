{{/*
Helpers of the logicnets-token-proxy library chart.

Every template here takes the calling chart's root context (`.` at the top of a template) and reads
its settings from `.Values.tokenProxy`: declare this chart as a dependency with `alias: tokenProxy`
so Helm merges this chart's values.yaml there as defaults.
*/}}

{{/* A name prefix for objects of this release: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "logicnets-token-proxy.baseName" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 48 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 48 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the ConfigMap holding the sidecar's config file. */}}
{{- define "logicnets-token-proxy.configMapName" -}}
{{- printf "%s-token-proxy" (include "logicnets-token-proxy.baseName" .) -}}
{{- end -}}

{{/* Recommended labels (app.kubernetes.io/*) for objects the library renders, e.g. the ConfigMap. */}}
{{- define "logicnets-token-proxy.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: token-proxy
app.kubernetes.io/part-of: {{ .Chart.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Values.tokenProxy.image.tag | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "logicnets-token-proxy.image" -}}
{{- if .Values.tokenProxy.image.digest -}}
{{- printf "%s@%s" .Values.tokenProxy.image.repository .Values.tokenProxy.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.tokenProxy.image.repository (toString .Values.tokenProxy.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* true when the config file lists the upstreams (then no LOGICNETS_* upstream variables are set). */}}
{{- define "logicnets-token-proxy.fileUpstreams" -}}
{{- if and .Values.tokenProxy.config (get .Values.tokenProxy.config "upstreams") -}}true{{- end -}}
{{- end -}}

{{/* Path of the mounted private key file. */}}
{{- define "logicnets-token-proxy.keyFile" -}}
{{- printf "%s/%s" (.Values.tokenProxy.privateKey.mountPath | trimSuffix "/") .Values.tokenProxy.privateKey.secretKey -}}
{{- end -}}

{{/* Path of the mounted CA file, or nothing when no CA ConfigMap is set. */}}
{{- define "logicnets-token-proxy.caFile" -}}
{{- if .Values.tokenProxy.ca.configMapName -}}
{{- printf "%s/%s" (.Values.tokenProxy.ca.mountPath | trimSuffix "/") .Values.tokenProxy.ca.key -}}
{{- end -}}
{{- end -}}

{{/* Paths of the mounted client certificate and key, or nothing when no client certificate Secret is set. */}}
{{- define "logicnets-token-proxy.clientCertFile" -}}
{{- if .Values.tokenProxy.clientCertificate.secretName -}}
{{- printf "%s/%s" (.Values.tokenProxy.clientCertificate.mountPath | trimSuffix "/") .Values.tokenProxy.clientCertificate.certKey -}}
{{- end -}}
{{- end -}}
{{- define "logicnets-token-proxy.clientKeyFile" -}}
{{- if .Values.tokenProxy.clientCertificate.secretName -}}
{{- printf "%s/%s" (.Values.tokenProxy.clientCertificate.mountPath | trimSuffix "/") .Values.tokenProxy.clientCertificate.keyKey -}}
{{- end -}}
{{- end -}}

{{/*
Stops rendering with a sentence for the operator when a required value is missing or the values
contradict each other. Included by the container template, so every workload gets the checks.
*/}}
{{- define "logicnets-token-proxy.validate" -}}
{{- $_ := required "tokenProxy.image.repository is required: build the image from the repository's Dockerfile, push it to a registry the cluster can pull from, and set its name here (e.g. registry.example.com/platform/logicnets-token-proxy)" .Values.tokenProxy.image.repository -}}
{{- $_ := required "tokenProxy.privateKey.secretName is required: the name of an existing Secret holding the LogicNets server user's private key (kubectl create secret generic logicnets-client-key --from-file=private-key.pem=./server-user.pem)" .Values.tokenProxy.privateKey.secretName -}}
{{- if include "logicnets-token-proxy.fileUpstreams" . -}}
{{- if or .Values.tokenProxy.upstream.url .Values.tokenProxy.upstream.clientId -}}
{{- fail "tokenProxy.upstream.url/clientId and tokenProxy.config.upstreams are both set: describe the LogicNets installations either with tokenProxy.upstream (one) or with tokenProxy.config.upstreams (several), not both" -}}
{{- end -}}
{{- else -}}
{{- $_ := required "tokenProxy.upstream.url is required: the base URL of the LogicNets installation including the company, e.g. https://lua5.logicnets.local/logicnets" .Values.tokenProxy.upstream.url -}}
{{- $_ := required "tokenProxy.upstream.clientId is required: the client id of the LogicNets server user (AccessManagement, user type server)" .Values.tokenProxy.upstream.clientId -}}
{{- end -}}
{{- if eq (int .Values.tokenProxy.ports.proxy) (int .Values.tokenProxy.ports.admin) -}}
{{- fail (printf "tokenProxy.ports.proxy and tokenProxy.ports.admin are both %v: the proxy and the admin endpoints need two different ports" .Values.tokenProxy.ports.proxy) -}}
{{- end -}}
{{- $chartEnv := list -}}
{{- range (include "logicnets-token-proxy.chartEnv" . | fromYamlArray) -}}
{{- $chartEnv = append $chartEnv .name -}}
{{- end -}}
{{- range .Values.tokenProxy.extraEnv -}}
{{- if has .name $chartEnv -}}
{{- fail (printf "tokenProxy.extraEnv sets %s, which the chart sets itself: use the chart's own value for it (see helm/logicnets-token-proxy/values.yaml)" .name) -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tokenProxy.nativeSidecar (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "tokenProxy.nativeSidecar needs Kubernetes 1.29 or later (this is %s): set tokenProxy.nativeSidecar=false for a plain sidecar container, or pass --kube-version to helm template" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{/*
The least terminationGracePeriodSeconds the pod needs for the sidecar to drain: the drain delay
(legacy sidecar only) plus the in-flight timeout plus 5 s of slack. Use it as
`terminationGracePeriodSeconds: {{ max 30 (include "logicnets-token-proxy.minTerminationGracePeriodSeconds" . | int) }}`.
*/}}
{{- define "logicnets-token-proxy.minTerminationGracePeriodSeconds" -}}
{{- $delay := 0 -}}
{{- if not .Values.tokenProxy.nativeSidecar -}}
{{- $delay = int .Values.tokenProxy.legacyShutdownDelay -}}
{{- end -}}
{{- add $delay (int .Values.tokenProxy.shutdownTimeout) 5 -}}
{{- end -}}

{{/* A checksum of the sidecar's config file; as a pod annotation it rolls the pods when the config changes. */}}
{{- define "logicnets-token-proxy.checksum" -}}
{{- include "logicnets-token-proxy.configFile" . | sha256sum -}}
{{- end -}}

{{/* Pod annotations the sidecar needs: the config checksum. Put them under spec.template.metadata.annotations. */}}
{{- define "logicnets-token-proxy.podAnnotations" -}}
checksum/logicnets-token-proxy-config: {{ include "logicnets-token-proxy.checksum" . }}
{{- end -}}
